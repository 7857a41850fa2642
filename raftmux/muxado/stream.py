"""
A muxado stream (either generation), as the Twisted transport its protocol
writes to: a ``StreamTransport`` hosted by its ``MuxadoSession``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftmux.muxado.session import MuxadoSession
from twisted.python.failure import Failure

from raftmux.muxado.errors import ErrorCode, MuxadoError, StreamRefused, StreamReset
from raftmux.streamtransport import HIGH_WATER, StreamTransport

__all__ = ["HIGH_WATER", "MuxadoStream"]

_REFUSED_CODES = (ErrorCode.STREAM_REFUSED, ErrorCode.ACCEPT_QUEUE_FULL)


class MuxadoStream(StreamTransport):
    """
    One stream of a ``MuxadoSession``.  ``streamId`` is its muxado ID;
    ``streamType`` and ``priority`` are what it was opened with (v1 carries
    both in its SYN; v2 carries the type in the stream's first 4 bytes, and
    the priority only orders our own sending).  ``getPeer``/``getHost`` are
    the session transport's addresses, so a twisted.web request on a stream
    still sees the real client address.
    """

    def __init__(self, session: MuxadoSession, streamId: int, streamType: int | None = None,
                 priority: int | None = None) -> None:
        StreamTransport.__init__(self, session, streamId)
        self.session = session
        self.streamType = streamType
        self.priority = priority or 0

    def __repr__(self):
        return "<MuxadoStream %d of %r>" % (self.streamId, self.session)

    def resetReceived(self, code: int, remote: bool) -> None:
        """The stream was reset with muxado error ``code``, by the peer if ``remote``."""
        error: MuxadoError
        if remote and code in _REFUSED_CODES:
            error = StreamRefused(code, retryable=True)
        else:
            error = StreamReset(code, remote)
        self.streamLost(Failure(error))
