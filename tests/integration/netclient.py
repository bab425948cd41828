"""A client for the failover lab, run inside the client's network namespace
(``ip netns exec NS python netclient.py ...``): standard library only.

It sends ``GET /`` with a Host header to one address, for at most ``--seconds``
(or until stdin closes), two ways at once:

- ``new``: open loop, a new connection every ``--interval`` seconds whatever the
  others are doing (so the first success after an outage is seen within one
  interval, not after a connect timeout);
- ``ka``: ``--keep-alive`` connections, each a closed loop of requests on one
  kept connection; a request that fails (reset, timeout, no answer) closes it and
  the next request opens a new one.  Each failed attempt is one failed request,
  the reconnect attempts included; ``reused`` says whether it went over a
  connection that had already answered.

One JSON line per request on stdout: ``{"kind", "start", "end", "ok", "via",
"reused", "error", "worker"}``, times from ``time.monotonic()`` (CLOCK_MONOTONIC, the same
clock in every process of the machine); ``via`` is the body's ``via ADDRESS``
(the backend echoes the LB node's address).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time


def _emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _via(body: bytes) -> str | None:
    text = body.decode(errors="replace").strip()
    return text.split()[1] if text.startswith("via ") and len(text.split()) > 1 else None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, body, headers.get("connection") != "close"


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {args.host}\r\nUser-Agent: breakwater-netclient\r\n"
        ).encode()
        self.stop = asyncio.Event()

    async def one_new(self) -> None:
        start = time.monotonic()
        record: dict[str, object] = {"kind": "new", "start": start, "reused": False}
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.args.address, self.args.port), self.args.timeout
            )
            writer.write(self.request + b"Connection: close\r\n\r\n")
            status, body, _ = await asyncio.wait_for(_read_response(reader), self.args.timeout)
            record.update(ok=status == 200, via=_via(body), error=None if status == 200 else status)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            record.update(ok=False, via=None, error=type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()
        record["end"] = time.monotonic()
        _emit(record)

    async def new_connections(self) -> None:
        tasks = set()
        while not self.stop.is_set():
            task = asyncio.create_task(self.one_new())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.interval)
        if tasks:
            await asyncio.wait(tasks)

    async def keep_alive(self, worker: int) -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        answered = False  # this connection has answered at least once
        while not self.stop.is_set():
            start = time.monotonic()
            record: dict[str, object] = {
                "kind": "ka",
                "start": start,
                "reused": answered and connection is not None,
                "worker": worker,
            }
            try:
                if connection is None:
                    connection = await asyncio.wait_for(
                        asyncio.open_connection(self.args.address, self.args.port),
                        self.args.timeout,
                    )
                    answered = False
                reader, writer = connection
                writer.write(self.request + b"\r\n")
                status, body, keep = await asyncio.wait_for(
                    _read_response(reader), self.args.timeout
                )
                record.update(
                    ok=status == 200, via=_via(body), error=None if status == 200 else status
                )
                answered = True
                if not keep:
                    writer.close()
                    connection = None
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                record.update(ok=False, via=None, error=type(exc).__name__)
                if connection is not None:
                    connection[1].close()
                connection = None
            record["end"] = time.monotonic()
            _emit(record)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.interval)
        if connection is not None:
            connection[1].close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.args.seconds, self.stop.set)
        # The controller closes our stdin to stop us.
        loop.add_reader(sys.stdin.fileno(), self._stdin)
        workers = [self.new_connections()] + [
            self.keep_alive(i) for i in range(self.args.keep_alive)
        ]
        await asyncio.gather(*workers)

    def _stdin(self) -> None:
        if not sys.stdin.buffer.raw.read(4096):
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            self.stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--host", default="failover.example")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--keep-alive", type=int, default=4)
    asyncio.run(Client(parser.parse_args()).run())


if __name__ == "__main__":
    main()
