# -*- test-case-name: raftmux.test.test_rafthttp_client -*-
"""
etcd's prober (spec 8): ``GET <url>/raft/probing`` every 4 s per peer,
smoothed RTT, clock difference, and the RTT histogram.  Diagnostic only:
it never changes a peer's status or routing.
"""

import calendar
import json
import re

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from raftmux.httpbody import discardBody, readBody
from raftmux.rafthttp.urlpick import normalizeURLs

__all__ = ["Prober", "parseRFC3339", "PROBE_INTERVAL"]

# proberInterval = ConnReadTimeout - 1 s
PROBE_INTERVAL = 4.0

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parseRFC3339(text):
    """Seconds since the epoch of a Go RFC 3339 (nano) time string."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("not an RFC 3339 time: %r" % (text,))
    y, mo, d, h, mi, s, frac, zone = match.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    if frac:
        seconds += int(frac) / 10 ** len(frac)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


class Prober:
    """Probes one peer's URLs, rotating its own index on failure."""

    log = Logger()

    def __init__(self, peer, urls, interval=PROBE_INTERVAL):
        self.peer = peer
        self.clock = peer.transport.reactor
        self.interval = interval
        self.srtt = 0.0
        self.clockDifference = 0.0
        self.successes = 0
        self.failures = 0
        self.healthy = True
        self._loop = LoopingCall(self.probe)
        self._loop.clock = self.clock
        self._pending = None
        self.update(urls)

    def update(self, urls):
        self.urls = normalizeURLs(urls)
        self._index = 0

    def start(self):
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("prober stopped", f))

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        if self._pending is not None:
            self._pending.cancel()

    def probe(self):
        """One probe; returns a Deferred firing with the RTT or None."""
        if self._pending is not None:
            return None
        url = self.urls[self._index]
        started = self.clock.seconds()
        d = self._pending = self.peer.transport.agent.request(
            b"GET", (url + "/raft/probing").encode())

        def response(r):
            if r.code != 200:
                discardBody(r)
                raise ValueError("status %d" % (r.code,))
            return readBody(r, 4096)

        def parsed(text):
            body = json.loads(text)
            if not body.get("OK"):
                raise ValueError("OK is not true")
            rtt = self.clock.seconds() - started
            self.srtt = rtt if not self.successes else 0.875 * self.srtt + 0.125 * rtt
            self.successes += 1
            self.clockDifference = self.clock.seconds() - parseRFC3339(body["Now"]) - self.srtt / 2
            self.peer.metrics.roundTripTime.observe(rtt)
            if not self.healthy:
                self.log.info("prober: {peer:x} is healthy again", peer=self.peer.id)
            self.healthy = True
            if abs(self.clockDifference) > 1:
                self.log.warn("prober found high clock drift to {peer:x}: {drift:.3f} s",
                              peer=self.peer.id, drift=self.clockDifference)
            return rtt

        def failed(failure):
            self.failures += 1
            self._index = (self._index + 1) % len(self.urls)
            if self.healthy:
                self.log.warn("prober detected unhealthy status of {peer:x}: {error}",
                              peer=self.peer.id, error=failure.getErrorMessage())
            self.healthy = False
            return None

        def done(result):
            self._pending = None
            return result

        d.addCallback(response).addCallback(parsed).addErrback(failed).addBoth(done)
        return d
