"""``breakwater edge-health``: one judge of this node's health for keepalived and FRR.

Every ``ha.interval`` seconds it runs :func:`breakwater.ha.check.check`; ``ha.fall``
failures in a row make the node unhealthy (a planned one, out of rotation, at once),
``ha.rise`` good checks healthy again.  On each change of verdict it logs why, writes
keepalived's track file (``0``/``1``) and the state file, and, with BGP, announces the
VIPs or withdraws them -- after ``ha.graceful_shutdown_seconds`` of GRACEFUL_SHUTDOWN
when the node was taken out of rotation on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from breakwater.config import Config
from breakwater.ha.check import Probes, Verdict, check, monitor_address
from breakwater.ha.frr import FRR, FRRError

log = logging.getLogger("breakwater.edge-health")


@dataclass
class Judgement:
    """The verdict with its hysteresis: pure, so the rules are tested alone."""

    fall: int
    rise: int
    healthy: bool = False  # a node starts out unhealthy and earns the VIP
    planned: bool = False
    reasons: tuple[str, ...] = ("starting",)
    since: float = field(default_factory=time.time)
    _bad: int = 0
    _good: int = 0

    def see(self, verdict: Verdict, now: float) -> bool:
        """Take one check; True when the verdict changed."""
        if verdict.ok:
            self._bad, self._good = 0, self._good + 1
        elif verdict.soft and self.healthy:
            self._good = 0  # tolerated while healthy: a watcher restarting
        else:
            self._good, self._bad = 0, self._bad + 1
        was = (self.healthy, self.planned)
        if self.healthy and (verdict.planned or self._bad >= self.fall):
            self.healthy = False
        elif not self.healthy and self._good >= self.rise:
            self.healthy = True
        if self.healthy:
            self.planned = False
        elif verdict.planned:
            self.planned = True
        elif not verdict.ok and not verdict.soft:
            self.planned = False  # something broke besides: no more a planned drain
        # (a good check while still unhealthy keeps the drain planned until risen)
        if verdict.reasons or self.healthy:
            self.reasons = verdict.reasons
        changed = (self.healthy, self.planned) != was
        if changed:
            self.since = now
        return changed


@dataclass(frozen=True)
class Offer:
    """What the node offers its clients: the VRRP VIPs held (track file 0), the BGP
    prefixes announced, with GRACEFUL_SHUTDOWN; ``phase`` names it."""

    hold: bool
    announce: bool
    gshut: bool
    phase: str  # serving, closing, graceful-shutdown, released


class Release:
    """How a node lets go: at once when it broke; step by step when it was taken out
    of rotation on purpose --

    1. ``closing`` (``ha.drain_close_seconds``): the VIPs stay while HAProxy closes
       every HTTP/1 connection after its next response (``Connection: close`` while
       out of rotation) and idle ones at ``timeout http-keep-alive``: clients
       reconnect, and no keep-alive connection is cut when the address moves;
    2. ``graceful-shutdown`` (BGP, ``ha.graceful_shutdown_seconds``): the VRRP VIPs
       go, the BGP prefixes stay with GRACEFUL_SHUTDOWN, so the routers move flows
       to the other nodes before the path is gone;
    3. ``released``: nothing held, nothing announced.
    """

    def __init__(self, close_seconds: float, gshut_seconds: float, bgp: bool) -> None:
        self.close_seconds = close_seconds
        self.gshut_seconds = gshut_seconds
        self.bgp = bgp
        self.holding = False  # offering anything now (a node starts with nothing)
        self.closing_until: float | None = None
        self.withdraw_at: float | None = None

    def offer(self, judgement: Judgement, now: float) -> Offer:
        if judgement.healthy:
            self.holding, self.closing_until, self.withdraw_at = True, None, None
            return Offer(True, True, False, "serving")
        if judgement.planned and self.holding:
            if self.closing_until is None:
                self.closing_until = now + self.close_seconds
            if now < self.closing_until:
                return Offer(True, True, False, "closing")
            if self.bgp:
                if self.withdraw_at is None:
                    self.withdraw_at = now + self.gshut_seconds
                if now < self.withdraw_at:
                    return Offer(False, True, True, "graceful-shutdown")
        self.holding = False
        return Offer(False, False, False, "released")


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".staged", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".staged", path)


class EdgeHealth:
    def __init__(self, config: Config) -> None:
        ha = config.ha
        if not config.haproxy.monitor_binds:
            raise ValueError(
                "haproxy.monitor_binds is empty: edge-health asks the monitor whether"
                " this node is in rotation (set e.g. [':8404'])"
            )
        self.ha = ha
        self.probes = Probes(
            master_socket=config.haproxy.master_socket,
            monitor=monitor_address(config.haproxy.monitor_binds[0]),
            heartbeat_file=config.watcher.heartbeat_file,
            heartbeat_max_age=ha.heartbeat_max_age,
            timeout=ha.check_timeout,
        )
        self.judgement = Judgement(ha.fall, ha.rise)
        self.frr = FRR(ha.vtysh, ha.bgp_asn, ha.bgp_prefixes) if ha.bgp_asn else None
        self.release = Release(
            ha.drain_close_seconds, ha.graceful_shutdown_seconds, self.frr is not None
        )
        self.offered = Offer(False, False, False, "released")
        self.announced: bool | None = None  # None: not asked of FRR yet
        self.gshut = False
        self.frr_error: str | None = None
        self.stopping = asyncio.Event()
        self._next_reassert = 0.0

    # --- what the verdict drives ----------------------------------------------------

    async def _drive_frr(self, now: float, offer: Offer) -> None:
        if self.frr is None:
            return
        announce, gshut = offer.announce, offer.gshut
        due = (announce, gshut) != (self.announced, self.gshut)
        if not due and now < self._next_reassert:
            return
        self._next_reassert = now + self.ha.reassert_interval
        try:
            lines = await self.frr.apply(announce, gshut)
        except FRRError as exc:
            if self.frr_error != str(exc):
                log.error("FRR: %s", exc)
            self.frr_error = str(exc)
            return
        if self.frr_error is not None:
            log.info("FRR answers again")
        self.frr_error = None
        if lines and not due:
            log.warning(
                "FRR's running configuration had drifted (restarted or reloaded?): %s",
                "; ".join(lines),
            )
        elif lines:
            what = "announcing" if announce else "withdrawing"
            shut = " with GRACEFUL_SHUTDOWN" if gshut else ""
            log.info("BGP: %s %s%s", what, ", ".join(sorted(self.frr.prefixes)), shut)
        self.announced, self.gshut = announce, gshut

    def state(self, now: float) -> dict[str, Any]:
        judgement = self.judgement
        return {
            "healthy": judgement.healthy,
            "planned": judgement.planned,
            "reasons": list(judgement.reasons),
            "since": judgement.since,
            "phase": self.offered.phase,
            "vrrp_hold": self.offered.hold,
            "checked_at": now,
            "pid": os.getpid(),
            "bgp": None
            if self.frr is None
            else {
                "prefixes": sorted(self.frr.prefixes),
                "announced": bool(self.announced),
                "graceful_shutdown": self.gshut,
                "withdraw_at": self.release.withdraw_at,
                "error": self.frr_error,
            },
        }

    async def step(self) -> None:
        verdict = await check(self.probes)
        now = time.time()
        judgement = self.judgement
        if judgement.see(verdict, now):
            if judgement.healthy:
                log.info("edge health: healthy (HAProxy, its monitor and the watcher answer)")
            else:
                kind = "out of rotation" if judgement.planned else "unhealthy"
                log.warning("edge health: %s (%s)", kind, "; ".join(judgement.reasons))
        offer = self.release.offer(judgement, now)
        if offer.phase != self.offered.phase and offer.phase in ("closing", "graceful-shutdown"):
            log.info("edge health: %s", self._phase_words(offer.phase))
        if offer.hold != self.offered.hold or not os.path.exists(self.ha.track_file):
            _write(self.ha.track_file, "0\n" if offer.hold else "1\n")
        self.offered = offer
        await self._drive_frr(now, offer)
        _write(self.ha.state_file, json.dumps(self.state(now)) + "\n")

    def _phase_words(self, phase: str) -> str:
        if phase == "closing":
            return (
                f"holding the VIPs {self.ha.drain_close_seconds:g} s more while HAProxy"
                " closes keep-alive connections"
            )
        return (
            f"VRRP VIPs released; BGP with GRACEFUL_SHUTDOWN for"
            f" {self.ha.graceful_shutdown_seconds:g} s, then withdrawn"
        )

    def _reassert_now(self) -> None:
        self._next_reassert = 0.0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        # SIGHUP: FRR was reloaded (frr-reload.py drops the networks frr.conf does not
        # name): assert the announcement at the next check, not reassert_interval later.
        loop.add_signal_handler(signal.SIGHUP, self._reassert_now)
        _write(self.ha.track_file, "1\n")  # no VIP until the node has earned it
        log.info(
            "edge health: checking every %.1f s (fall %d, rise %d)%s",
            self.ha.interval,
            self.ha.fall,
            self.ha.rise,
            f"; BGP AS {self.ha.bgp_asn}: {', '.join(self.ha.bgp_prefixes)}" if self.frr else "",
        )
        while not self.stopping.is_set():
            started = time.monotonic()
            await self.step()
            pause = max(0.0, self.ha.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pause)
        # Stopped: the VIP goes (keepalived); BGP is withdrawn without waiting.
        _write(self.ha.track_file, "1\n")
        self.judgement.healthy, self.judgement.reasons = False, ("edge-health stopped",)
        self.offered = Offer(False, False, False, "released")
        self._next_reassert = 0.0
        await self._drive_frr(time.time(), self.offered)
        _write(self.ha.state_file, json.dumps(self.state(time.time())) + "\n")
        log.info("edge health: stopped, VIP released")
        return 0
