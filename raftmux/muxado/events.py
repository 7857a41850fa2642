"""
The events the sans-IO muxado connections (both generations) return from
``receiveData``: what the peer did, for the Twisted session to act on.
"""


class StreamOpened:
    """
    The peer opened ``streamId`` (SYN); its first frame carries ``length``
    bytes.  ``streamType`` and ``priority`` are what a v1 SYN declared (None
    when absent, and always None from v2, whose stream type travels in the
    stream's first 4 bytes instead).
    """

    __slots__ = ("streamId", "length", "streamType", "priority")

    def __init__(self, streamId, length, streamType=None, priority=None):
        self.streamId = streamId
        self.length = length
        self.streamType = streamType
        self.priority = priority


class StreamRefusedLocally:
    """A peer SYN was refused with RST ``code`` (over a limit, or after GOAWAY)."""

    __slots__ = ("streamId", "code")

    def __init__(self, streamId, code):
        self.streamId = streamId
        self.code = code


class DataReceived:
    __slots__ = ("streamId", "data")

    def __init__(self, streamId, data):
        self.streamId = streamId
        self.data = data


class StreamEnded:
    """The peer half-closed ``streamId`` (FIN)."""

    __slots__ = ("streamId",)

    def __init__(self, streamId):
        self.streamId = streamId


class StreamReset:
    """
    ``streamId`` is reset: by the peer (``remote``) or by this side because
    the peer broke the stream's rules (flow control, data after FIN).
    """

    __slots__ = ("streamId", "code", "remote")

    def __init__(self, streamId, code, remote):
        self.streamId = streamId
        self.code = code
        self.remote = remote


class WindowUpdated:
    __slots__ = ("streamId", "increment")

    def __init__(self, streamId, increment):
        self.streamId = streamId
        self.increment = increment


class GoAwayReceived:
    """
    The peer sent GOAWAY.  ``refused`` lists this side's streams above
    ``lastStreamId``: the peer never saw them, so they are safe to retry.
    """

    __slots__ = ("lastStreamId", "code", "debug", "refused")

    def __init__(self, lastStreamId, code, debug, refused):
        self.lastStreamId = lastStreamId
        self.code = code
        self.debug = debug
        self.refused = refused


class ConnectionTerminated:
    """
    The peer broke the protocol.  A GOAWAY with ``code`` is queued as the
    last frame; the shell must send it and close the transport.
    """

    __slots__ = ("code", "message")

    def __init__(self, code, message):
        self.code = code
        self.message = message
