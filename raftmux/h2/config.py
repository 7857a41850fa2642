"""
``H2Config``: the settings and limits of one HTTP/2 connection, server or
client.  The settings part goes out in the connection's first SETTINGS
frame; the limits are enforced locally.
"""

DEFAULT_WINDOW = 1024 * 1024                 # our receive window, per stream
DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024  # and for the whole connection
DEFAULT_MAX_CONCURRENT_STREAMS = 100
DEFAULT_MAX_FRAME_SIZE = 16384
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024
DEFAULT_DISCARD = 256 * 1024
#: received events handled per reactor turn: with 64 requests in flight on one
#: connection, 16-48 broke the two ends' lockstep (bench h2: 5.7k -> 8.6k GETs/s)
DEFAULT_EVENTS_PER_TURN = 32


class H2Config:
    """
    @param maxConcurrentStreams: SETTINGS_MAX_CONCURRENT_STREAMS we announce
        (streams the peer may open at once; beyond, h2 ends the connection).
    @param initialWindowSize: SETTINGS_INITIAL_WINDOW_SIZE, our per-stream
        receive window.  Bytes are credited back only once delivered to the
        stream's protocol, so this bounds what a paused stream holds.
    @param connectionWindowSize: our connection-level receive window.
    @param maxFrameSize: SETTINGS_MAX_FRAME_SIZE.
    @param maxHeaderListSize: SETTINGS_MAX_HEADER_LIST_SIZE, also enforced on
        decoding (a larger header block ends the connection with
        ENHANCE_YOUR_CALM: its HPACK state is gone).
    @param maxBodySize: default largest body a stream may receive (None: no
        limit); a server answers 413 and resets, a client resets.
    @param maxDiscard: body bytes read and dropped after a server answered
        early (curl reports an early RST_STREAM as an error); beyond, the
        stream is reset with NO_ERROR.
    @param resetBurst: RST_STREAMs the peer may send in a burst ...
    @param resetRate: ... and per second after it (CVE-2023-44487, "rapid
        reset"); beyond, GOAWAY ENHANCE_YOUR_CALM and close.
    @param maxPausedWrite: bytes we may write (control frames, headers)
        while the transport says its buffer is full; beyond, the peer is not
        reading and is cut off.
    @param pingInterval: seconds without receiving anything before we send a
        PING (None: no keepalive).
    @param pingTimeout: seconds to wait for that PING's ACK before closing.
    @param idleTimeout: seconds with no open stream before a GOAWAY and a
        close (None: never).
    @param shutdownTimeout: seconds a graceful GOAWAY waits for streams in
        flight before the connection is closed anyway.
    @param maxHeldBytes: bytes stream protocols may keep across the
        connection (partial messages they credited so that a message larger
        than the window can complete; see ``H2Protocol.holdBytes``).
    @param validateInboundHeaders: check the header blocks we receive as
        RFC 9113 8.2-8.3 asks (pseudo-header fields, forbidden characters
        and fields); a malformed block resets its stream with
        PROTOCOL_ERROR.  A server should; a client that reads only
        ``:status`` (gossip's) may save the cost.
    @param eventsPerTurn: at most this many received events (a stream's
        headers, a DATA frame...) are handled before the reactor gets a turn
        (None: all at once; 32 by default).  With many streams answered in
        one read, what the first ones wrote goes out while the rest are
        handled, so the two ends work at once instead of in turns.
    @param assumedPeerMaxStreams: streams a client opens before the server's
        SETTINGS says how many it allows (RFC 9113 recommends servers allow
        at least 100).
    """

    def __init__(self, maxConcurrentStreams=DEFAULT_MAX_CONCURRENT_STREAMS,
                 initialWindowSize=DEFAULT_WINDOW, connectionWindowSize=DEFAULT_CONNECTION_WINDOW,
                 maxFrameSize=DEFAULT_MAX_FRAME_SIZE, maxHeaderListSize=DEFAULT_MAX_HEADER_LIST_SIZE,
                 maxBodySize=None, maxDiscard=DEFAULT_DISCARD, resetBurst=200, resetRate=100.0,
                 maxPausedWrite=1024 * 1024, pingInterval=None, pingTimeout=20.0,
                 idleTimeout=None, shutdownTimeout=30.0, maxHeldBytes=64 * 1024 * 1024,
                 assumedPeerMaxStreams=100, validateInboundHeaders=True,
                 eventsPerTurn=DEFAULT_EVENTS_PER_TURN):
        if not 16384 <= maxFrameSize <= 16777215:
            raise ValueError("maxFrameSize must be within 16384..16777215")
        if not 0 < initialWindowSize <= 2 ** 31 - 1:
            raise ValueError("initialWindowSize must be within 1..2**31-1")
        if not 65535 <= connectionWindowSize <= 2 ** 31 - 1:
            raise ValueError("connectionWindowSize must be within 65535..2**31-1")
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialWindowSize = initialWindowSize
        self.connectionWindowSize = connectionWindowSize
        self.maxFrameSize = maxFrameSize
        self.maxHeaderListSize = maxHeaderListSize
        self.maxBodySize = maxBodySize
        self.maxDiscard = maxDiscard
        self.resetBurst = resetBurst
        self.resetRate = resetRate
        self.maxPausedWrite = maxPausedWrite
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.idleTimeout = idleTimeout
        self.shutdownTimeout = shutdownTimeout
        self.maxHeldBytes = maxHeldBytes
        self.assumedPeerMaxStreams = assumedPeerMaxStreams
        self.validateInboundHeaders = validateInboundHeaders
        self.eventsPerTurn = eventsPerTurn

    def replace(self, **changes):
        """A copy with ``changes`` applied."""
        values = dict(vars(self))
        values.update(changes)
        return H2Config(**values)

    def __repr__(self):
        return "H2Config(%s)" % (", ".join("%s=%r" % kv for kv in sorted(vars(self).items())),)
