"""
Go muxado's heartbeat, as two small stream protocols, for both generations.

v2 (spec 8.2): the requester opens a typed stream (first 4 bytes
``ff ff ff ff``, all in the SYN frame).  v1 (spec 15.2): the stream type
0xFFFFFEFF and priority 0x7FFFFFFF travel in the SYN itself.  Either way the
requester sends a 4-byte ping every interval and expects it echoed; the
responder echoes every 4 bytes unchanged.  Unlike Go v2, the session can
close itself when echoes stop (``MuxadoConfig.closeOnHeartbeatTimeout``), as
Go v1 does.
"""

import os
from struct import Struct
from typing import Any

from twisted.internet.protocol import Protocol, connectionDone

HEARTBEAT_TYPE = b"\xff\xff\xff\xff"

#: v1's heartbeat extension: stream type and the priority Go asks for.
V1_HEARTBEAT_TYPE = 0xFFFFFEFF
V1_HEARTBEAT_PRIORITY = 0x7FFFFFFF
#: v1 stream types from here up belong to extensions (Go: MinExtensionType).
V1_MIN_EXTENSION_TYPE = 0xFFFFFEFF
_u32 = Struct(">I")


class HeartbeatResponder(Protocol):
    """Echo each complete 4-byte ping as it arrives."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self):
        self._buf = b""

    def dataReceived(self, data):
        buf = self._buf + data
        whole = len(buf) - len(buf) % 4
        if whole:
            self.transport.write(buf[:whole])
        self._buf = buf[whole:]


class HeartbeatRequester(Protocol):
    """
    Ping every ``interval`` seconds; call ``onBeat(rtt, False)`` per echo and
    ``onBeat(0, True)`` once when no echo came for ``interval + tolerance``.
    A wrong echo stops the heartbeat for good, as in Go v2.  With ``strict``
    (Go v1, which then closes the session) a wrong echo, or the heartbeat
    stream ending while we still run, also reports ``onBeat(0, True)``.
    """

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, interval, tolerance, clock, onBeat, prefix=HEARTBEAT_TYPE,
                 strict=False):
        self.prefix = prefix
        self.strict = strict
        self.interval = interval
        self.tolerance = tolerance
        self.clock = clock
        self.onBeat = onBeat
        self.lastRTT = None
        self._expected = None
        self._sentAt = None
        self._buf = b""
        self._pingCall = None
        self._deadline = None
        self._stopped = False

    def connectionMade(self):
        if self.prefix:
            self.transport.write(self.prefix)
        self._pingCall = self.clock.callLater(self.interval, self._ping)
        self._armDeadline()

    def _armDeadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = self.clock.callLater(self.interval + self.tolerance, self._timedOut)

    def _ping(self):
        self._pingCall = None
        self._expected = _u32.pack(_u32.unpack(os.urandom(4))[0] & 0x7FFFFFFF)
        self._sentAt = self.clock.seconds()
        self.transport.write(self._expected)

    def dataReceived(self, data):
        self._buf += data
        if len(self._buf) < 4 or self._stopped:
            return
        echo, self._buf = self._buf[:4], self._buf[4:]
        if echo != self._expected:
            self.stop()
            if self.strict:
                self.onBeat(0, True)
            return
        self.lastRTT = self.clock.seconds() - self._sentAt
        self._expected = None
        self._armDeadline()
        self._pingCall = self.clock.callLater(self.interval, self._ping)
        self.onBeat(self.lastRTT, False)

    def _timedOut(self):
        self._deadline = None
        self.onBeat(0, True)

    def stop(self):
        self._stopped = True
        for call in (self._pingCall, self._deadline):
            if call is not None and call.active():
                call.cancel()
        self._pingCall = self._deadline = None

    def connectionLost(self, reason=connectionDone):
        running = not self._stopped
        self.stop()
        if running and self.strict:
            self.onBeat(0, True)
