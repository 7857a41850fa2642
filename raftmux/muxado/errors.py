"""
muxado error codes (the numbers on the wire) and the exceptions raftmux raises.

Stream-level failures subclass ``twisted.internet.error.ConnectionLost`` so
that code written for TCP (``reason.check(ConnectionLost)``) keeps working
when its transport is a muxado stream.
"""

from __future__ import annotations

from enum import IntEnum

from twisted.internet.error import ConnectionLost


class ErrorCode(IntEnum):
    """muxado v2 error codes (spec section 4.6); not HTTP/2's numbers."""

    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2
    FLOW_CONTROL_ERROR = 3
    STREAM_CLOSED = 4
    STREAM_REFUSED = 5
    STREAM_CANCELLED = 6
    STREAM_RESET = 7
    FRAME_SIZE_ERROR = 8
    ACCEPT_QUEUE_FULL = 9
    ENHANCE_YOUR_CALM = 10
    REMOTE_GONE_AWAY = 11
    STREAMS_EXHAUSTED = 12
    WRITE_TIMEOUT = 13
    SESSION_CLOSED = 14
    PEER_EOF = 15
    # raftmux's own, local only (never on the wire): the peer stopped echoing
    # heartbeats and this side closed the session.
    HEARTBEAT_TIMEOUT = 16
    UNKNOWN = 0xFF


def codeName(code: int) -> str:
    """A readable name for any u32 code, known or not."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "0x%x" % (code,)


class MuxadoError(Exception):
    """Base class of every muxado failure; ``code`` is the muxado error code."""

    code: int = ErrorCode.UNKNOWN

    def __init__(self, message: str = "", code: int | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or codeName(self.code))


class ProtocolError(MuxadoError):
    """A frame broke the protocol; the session sends GOAWAY(code) and dies."""

    code = ErrorCode.PROTOCOL_ERROR


class FrameEncodeError(MuxadoError, ValueError):
    """A frame field is out of the range the wire format can carry."""

    code = ErrorCode.INTERNAL_ERROR


class StreamReset(MuxadoError, ConnectionLost):
    """
    The stream was reset.  ``remote`` says whether the peer sent the RST
    (with ``code``) or this side reset it (flow-control violation, abort).
    """

    code = ErrorCode.STREAM_RESET

    def __init__(self, code: int = ErrorCode.STREAM_RESET, remote: bool = True,
                 message: str = "") -> None:
        self.remote = remote
        if not message:
            who = "peer" if remote else "local side"
            message = "stream reset by %s with error code %s" % (who, codeName(code))
        MuxadoError.__init__(self, message, code)


class StreamRefused(StreamReset):
    """
    The peer never processed this stream.  ``retryable`` is true when it is
    safe to send the same request again on another session: the stream was
    above the last-stream-id of a GOAWAY, or was refused (RST 5 or 9) or
    opened after a GOAWAY.
    """

    code = ErrorCode.STREAM_REFUSED

    def __init__(self, code: int = ErrorCode.STREAM_REFUSED, retryable: bool = True,
                 message: str = "") -> None:
        self.retryable = retryable
        StreamReset.__init__(self, code, True, message or "stream refused (%s)" % codeName(code))


class StreamsExhausted(MuxadoError):
    """This session has used up its stream-ID space; open a new session."""

    code = ErrorCode.STREAMS_EXHAUSTED


class SessionClosed(MuxadoError, ConnectionLost):
    """
    The session is gone.  ``localCode`` is why this side ended it (PEER_EOF
    when the transport simply closed), ``remoteCode``/``remoteDebug`` what the
    peer's GOAWAY said, if it sent one.
    """

    code = ErrorCode.SESSION_CLOSED

    def __init__(self, localCode: int = ErrorCode.SESSION_CLOSED, remoteCode: int | None = None,
                 remoteDebug: bytes = b"", message: str = "") -> None:
        self.localCode = localCode
        self.remoteCode = remoteCode
        self.remoteDebug = remoteDebug
        if not message:
            message = "session closed (%s" % (codeName(localCode),)
            if remoteCode is not None:
                message += "; peer said %s %r" % (codeName(remoteCode), remoteDebug)
            message += ")"
        MuxadoError.__init__(self, message, ErrorCode.SESSION_CLOSED)
