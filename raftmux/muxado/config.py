"""Session settings, with Go muxado's defaults (per generation) where Go has one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from raftmux.muxado.connection import DEFAULT_WINDOW

#: Go v1's fixed stream window (its 64 KiB receive ring).
V1_WINDOW = 0x10000

# Go's heartbeat defaults per generation: (interval, tolerance) in seconds.
_HEARTBEAT_DEFAULTS = {1: (3.0, 10.0), 2: (10.0, 15.0)}


@dataclass
class MuxadoConfig:
    """
    ``version``: the muxado generation a client speaks, 2 (Go master and
    ngrok's ``muxado/v2``; the default) or 1 (the 2014 generation Debian
    ships, with SYN frames, priorities and stream types).  A server built
    with ``version=None`` (the default for servers, see
    ``MuxadoServerFactory``) takes either, told apart by the first frame.

    ``versionWait``: seconds a server that does not yet know the client's
    generation holds its own ``openStream`` calls, waiting for the client's
    first frame (a Go v1 client always speaks at once: its heartbeat SYN);
    then it speaks v2, which lets a v2 client speak only after the server.

    ``maxWindowSize``: per-stream receive buffer and initial send window.  Go
    never negotiates it, so both peers must start from the same value; None
    means the generation's (v2: 256 KiB, v1: 64 KiB).

    ``acceptBacklog``: streams opened by the peer that wait for
    ``MuxadoSession.acceptStream`` when the session has no stream factory
    (Go: 128).  Past it the peer gets RST ACCEPT_QUEUE_FULL.

    ``maxIncomingStreams``: peer-opened streams open at once; bounds memory
    to about ``maxIncomingStreams * maxWindowSize``.

    ``maxBufferedBytes``: bytes received on all of a session's streams and
    not yet taken by their protocols; past it the session stops reading its
    transport until half of it has been taken.  None: only the windows
    bound it (``maxIncomingStreams * maxWindowSize``, plus window growth).

    ``heartbeat``: run our own heartbeat requester.  None means the
    generation's habit: on for v1 (every Go v1 session runs one, and closes
    a session whose peer never echoes), off for v2 unless
    ``heartbeatInterval`` is set.  Pings go every ``heartbeatInterval``
    seconds (None: Go's 3 s for v1, 10 s for v2); with no echo for
    ``heartbeatInterval + heartbeatTolerance`` (tolerance None: 10 s / 15 s)
    ``onHeartbeat(0, True)`` is called and, if ``closeOnHeartbeatTimeout``,
    the session is closed.  ``onHeartbeat(rtt, timedOut)`` also reports
    each round trip.

    ``answerHeartbeats``: echo a peer's heartbeat stream (v1: a stream of
    type 0xFFFFFEFF; v2: a stream whose first 4 bytes are ``ff ff ff ff``).

    ``maxGoAwayDebug``: how much of a GOAWAY's debug text is kept.

    ``windowUpdateThreshold``: credit is given back (WNDINC) once this many
    bytes of a stream have been consumed; ``None`` means a quarter of the
    (current) window.  Go sends one per read; any value up to the window is
    valid.

    ``maxAutoWindowSize`` and ``autoWindowBudget``: a stream whose peer is
    held back by the window (it used nearly all of it before our credit
    came, while our application kept up) gets its window doubled, up to
    ``maxAutoWindowSize``, out of a per-session ``autoWindowBudget`` of
    extra bytes (see ``raftmux.muxado.window``).  Go senders of both
    generations add any credit we grant, so this needs nothing from the
    peer.  A budget of 0 turns it off.
    """

    version: Optional[int] = 2
    versionWait: float = 1.0
    maxWindowSize: Optional[int] = None
    acceptBacklog: int = 128
    maxIncomingStreams: int = 1024
    maxBufferedBytes: Optional[int] = None
    maxGoAwayDebug: int = 65536
    heartbeat: Optional[bool] = None
    heartbeatInterval: Optional[float] = None
    heartbeatTolerance: Optional[float] = None
    closeOnHeartbeatTimeout: bool = True
    onHeartbeat: Optional[Callable[[float, bool], None]] = None
    answerHeartbeats: bool = True
    windowUpdateThreshold: Optional[int] = None
    maxAutoWindowSize: int = 4 * 1024 * 1024
    autoWindowBudget: int = 16 * 1024 * 1024

    def __post_init__(self):
        if self.version not in (None, 1, 2):
            raise ValueError("muxado version must be 1 or 2, not %r" % (self.version,))

    def windowFor(self, version: int | None) -> int:
        """The stream window a session of ``version`` starts with."""
        if self.maxWindowSize is not None:
            return self.maxWindowSize
        return V1_WINDOW if version == 1 else DEFAULT_WINDOW

    def heartbeatFor(self, version: int) -> tuple[float, float] | None:
        """``(interval, tolerance)`` of our heartbeat on a ``version`` session, or None."""
        enabled = self.heartbeat
        if enabled is None:
            enabled = version == 1 or self.heartbeatInterval is not None
        if not enabled:
            return None
        interval, tolerance = _HEARTBEAT_DEFAULTS[version]
        if self.heartbeatInterval is not None:
            interval = self.heartbeatInterval
        if self.heartbeatTolerance is not None:
            tolerance = self.heartbeatTolerance
        return interval, tolerance
