#!/usr/bin/env python3
"""Nothing dropped: load through the edge while endpoints change and HAProxy reloads.

Real etcd, HAProxy and the watcher on loopback.  Two runs:

1. wrk, keep-alive connections, on one route while the watcher applies 100 endpoint
   changes to that route's backend (runtime API) and 20 option changes (20 reloads);
   every non-2xx response and every socket error is counted.
2. long-lived streaming responses (chunked, one chunk every 100 ms) open across a
   reload: streams shorter than ``hard-stop-after`` finish on the old worker; longer
   ones are closed by the old worker when ``hard-stop-after`` expires, as documented.

Prints figures; never fails on a time.

    .venv/bin/python bench/no_drops.py [--seconds 30] [--hard-stop-after 5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from common import StaticBackends, Writer, summary, wait_until, wrk
from harness import (  # common put tests/ on the path: builders comes with harness
    Etcd,
    HAProxy,
    WatcherProcess,
    builders,
    endpoint_slice,
    haproxy_settings,
    http_get,
    ingress,
    service,
    watcher_config,
)


class Edge:
    """etcd + HAProxy + the watcher, with one route ``load.example`` to start with."""

    def __init__(self, work: Path, hard_stop_after: str) -> None:
        self.etcd = Etcd(work / "etcd")
        self.etcd.start()
        directory = work / "haproxy"
        directory.mkdir()
        settings = haproxy_settings(directory)
        from dataclasses import replace

        settings = replace(settings, hard_stop_after=hard_stop_after, maxconn=4000)
        self.proxy = HAProxy(directory, settings)
        self.proxy.start()
        self.writer = Writer(self.etcd)
        config = watcher_config(
            work,
            self.etcd,
            self.proxy,
            haproxy={"hard_stop_after": hard_stop_after, "maxconn": 4000},
            watcher={"log_level": "INFO"},
        )
        self.watcher = WatcherProcess(config, work / "watcher.log")
        self.watcher.start()

    def route(self, name: str, servers: list[tuple[str, int]]) -> None:
        self.writer.put_all(
            [
                service("bench", name),
                endpoint_slice("bench", name, servers),
                ingress("bench", name, f"{name}.example", name),
            ]
        )
        wait_until(lambda: http_get(self.proxy.http_port, f"{name}.example")[0] == 200)

    def option_change(self, name: str, index: int) -> dict[str, object]:
        """A change that takes a reload: the server timeout of Service ``name``'s
        backend, from a route ConfigMap (new routes, even to new Services, do not)."""
        data = {
            "service": name,
            "hosts": f"{name}.options.example",
            "timeout-server": f"{61 + index}s",
        }
        return builders.route_configmap("bench", f"{name}-options", data)

    def reloads(self) -> int:
        return int(self.proxy.processes().reloads)

    def close(self) -> None:
        self.writer.close()
        self.watcher.stop()
        self.proxy.stop()
        self.etcd.stop()


def keepalive_run(work: Path, seconds: float, hard_stop_after: str) -> dict:
    backends = StaticBackends(work, 4)
    edge = Edge(work, hard_stop_after)
    try:
        servers = backends.endpoints
        edge.route("load", servers[:2])
        reloads_before = edge.reloads()
        changes = {"endpoint": 0, "reload": 0}
        stop = threading.Event()

        def churn() -> None:
            # 100 endpoint changes and 20 new Ingresses, spread over the run: one
            # change every interval; every sixth change is a new route (a reload).
            interval = (seconds - 4) / 120
            time.sleep(1)
            for step in range(120):
                if stop.is_set():
                    return
                if step % 6 == 5:
                    index = changes["reload"]
                    edge.writer.put(edge.option_change("load", index))
                    changes["reload"] += 1
                else:
                    first = changes["endpoint"] % 4
                    pair = [servers[first], servers[(first + 1) % 4]]
                    edge.writer.put(endpoint_slice("bench", "load", pair))
                    changes["endpoint"] += 1
                time.sleep(interval)

        thread = threading.Thread(target=churn)
        thread.start()
        figures = wrk(f"http://127.0.0.1:{edge.proxy.http_port}/", "load.example", seconds)
        stop.set()
        thread.join()
        # Every change took effect: HAProxy runs the last timeout (one reload per
        # option change, unless two came within one reload; endpoints need none).
        last = f"timeout server {61 + changes['reload'] - 1}s"
        config = Path(edge.proxy.settings.config_file)
        wait_until(lambda: last in config.read_text())
        time.sleep(0.5)
        figures["reloads"] = edge.reloads() - reloads_before
        figures["changes"] = dict(changes)
        return figures
    finally:
        edge.close()
        backends.stop()


async def stream_server() -> tuple[asyncio.AbstractServer, int]:
    """A backend answering GET /stream/<seconds> with a chunk every 100 ms."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            seconds = float(path.rsplit("/", 1)[1] or 0)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(int(seconds * 10)):
                if writer.is_closing():
                    return  # the edge closed the stream
                writer.write(b"6\r\nchunk\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.60", 0)
    return server, server.sockets[0].getsockname()[1]


async def stream_client(port: int, seconds: float) -> tuple[bool, float]:
    """(complete, time closed): complete means every chunk and the last-chunk marker."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /stream/{seconds} HTTP/1.1\r\nHost: stream.example\r\n\r\n".encode())
    await writer.drain()
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
            if data.endswith(b"0\r\n\r\n"):
                break
    except OSError:
        pass
    writer.close()
    chunks = data.count(b"chunk\n")
    complete = data.endswith(b"0\r\n\r\n") and chunks == int(seconds * 10)
    return complete, time.monotonic()


def streaming_run(work: Path, hard_stop_after: float, streams: int) -> dict:
    edge = Edge(work, f"{hard_stop_after:g}s")
    loop = asyncio.new_event_loop()
    # The streaming backend runs on a loop of its own, in its own thread.
    server_loop = asyncio.new_event_loop()
    # Writes into streams the edge has closed (hard-stop-after) are expected here.
    server_loop.set_exception_handler(lambda _loop, _context: None)
    threading.Thread(target=server_loop.run_forever, daemon=True).start()
    try:
        server, port = asyncio.run_coroutine_threadsafe(stream_server(), server_loop).result()
        edge.route("stream", [("127.0.0.60", port)])
        short, long = hard_stop_after * 0.6, hard_stop_after * 3

        async def start_streams() -> list[asyncio.Future[tuple[bool, float]]]:
            tasks = [stream_client(edge.proxy.http_port, short) for _ in range(streams)]
            tasks += [stream_client(edge.proxy.http_port, long) for _ in range(streams)]
            running = [asyncio.ensure_future(task) for task in tasks]
            await asyncio.sleep(0.5)  # every stream is open and receiving
            return running

        running = loop.run_until_complete(start_streams())
        start = time.monotonic()
        before = edge.reloads()
        edge.writer.put(edge.option_change("stream", 0))
        wait_until(lambda: edge.reloads() > before, 10)
        reloaded = time.monotonic()
        results = loop.run_until_complete(asyncio.gather(*running))

        async def shut() -> None:
            server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.wait(others, timeout=2)

        asyncio.run_coroutine_threadsafe(shut(), server_loop).result(10)
        return {
            "streams": streams,
            "short_seconds": short,
            "long_seconds": long,
            "short_complete": sum(1 for done, _ in results[:streams] if done),
            "long_complete": sum(1 for done, _ in results[streams:] if done),
            "long_closed_after_reload": [closed - reloaded for _, closed in results[streams:]],
            "reload_after": reloaded - start,
        }
    finally:
        edge.close()
        loop.close()
        server_loop.call_soon_threadsafe(server_loop.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hard-stop-after", type=float, default=5.0)
    parser.add_argument("--streams", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-drops-") as work:
        load = keepalive_run(Path(work), args.seconds, f"{args.hard_stop_after:g}s")
    with tempfile.TemporaryDirectory(prefix="bw-drops-") as work:
        streams = streaming_run(Path(work), args.hard_stop_after, args.streams)
    print(
        f"keep-alive load (wrk, 32 connections, {args.seconds:g} s):"
        f" {load['changes']['endpoint']} endpoint changes, {load['changes']['reload']} option"
        f" changes -> {load['reloads']} reloads"
    )
    print(f"  requests {load['requests']}, {load['rps']:.0f}/s, p99 {load.get('p99_ms', 0):.2f} ms")
    print(
        f"  non-2xx responses {load['non_2xx']}; socket errors {load['socket_errors']}"
        f" ({load['socket_errors_detail']})"
    )
    print(
        f"long-lived streams across a reload (hard-stop-after {args.hard_stop_after:g} s,"
        f" reload {streams['reload_after'] * 1000:.0f} ms after the write):"
    )
    print(
        f"  {streams['streams']} streams of {streams['short_seconds']:g} s:"
        f" {streams['short_complete']} complete"
    )
    print(
        f"  {streams['streams']} streams of {streams['long_seconds']:g} s:"
        f" {streams['long_complete']} complete, closed after"
        f" {summary(streams['long_closed_after_reload'])} s after the reload"
        " (hard-stop-after expired)"
    )


if __name__ == "__main__":
    main()
