"""Session settings, with Go muxado's defaults where Go has one."""

from dataclasses import dataclass
from typing import Callable

from raftmux.muxado.connection import DEFAULT_WINDOW


@dataclass
class MuxadoConfig:
    """
    ``maxWindowSize``: per-stream receive buffer and initial send window.  Go
    never negotiates it, so both peers must use the same value (Go: 256 KiB).

    ``acceptBacklog``: streams opened by the peer that wait for
    ``MuxadoSession.acceptStream`` when the session has no stream factory
    (Go: 128).  Past it the peer gets RST ACCEPT_QUEUE_FULL.

    ``maxIncomingStreams``: peer-opened streams open at once; bounds memory
    to about ``maxIncomingStreams * maxWindowSize``.

    ``heartbeatInterval``: seconds between heartbeat pings on a Go-compatible
    heartbeat stream (spec 8.2); ``None`` sends none (the peer must run Go's
    Heartbeat wrapper, or raftmux, to answer).  With no echo for
    ``heartbeatInterval + heartbeatTolerance`` seconds ``onHeartbeat(0, True)``
    is called and, if ``closeOnHeartbeatTimeout``, the session is closed
    (Go only calls back).  ``onHeartbeat(rtt, timedOut)`` also reports each
    round trip.

    ``answerHeartbeats``: echo a peer's heartbeat stream (a stream whose
    first frame starts with the 4 bytes ``ff ff ff ff``).

    ``maxGoAwayDebug``: how much of a GOAWAY's debug text is kept.

    ``windowUpdateThreshold``: credit is given back (WNDINC) once this many
    bytes of a stream have been consumed; ``None`` means a quarter of the
    window.  Go sends one per read; any value up to the window is valid.
    """

    maxWindowSize: int = DEFAULT_WINDOW
    acceptBacklog: int = 128
    maxIncomingStreams: int = 1024
    maxGoAwayDebug: int = 65536
    heartbeatInterval: float | None = None
    heartbeatTolerance: float = 15.0
    closeOnHeartbeatTimeout: bool = True
    onHeartbeat: Callable[[float, bool], None] | None = None
    answerHeartbeats: bool = True
    windowUpdateThreshold: int | None = None
