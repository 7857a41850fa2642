# -*- test-case-name: raftmux.test.test_gossip -*-
"""
A ckit ``/stream`` as a Twisted transport: a ``StreamTransport`` hosted by
the HTTP/2 connection, whose payload is framed.

Each ``write`` is one frame in our half of the HTTP/2 stream (request body
on the dialing side, response body on the accepting side); frames the peer
sends are joined into the byte stream its protocol sees.  Back-pressure
both ways rides on HTTP/2 flow control (see ``raftmux.streamtransport``).

Attach a protocol with ``stream.attach(protocol)``; until then received
bytes wait, unacknowledged.
"""

from h2.errors import ErrorCodes
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure

from raftmux.gossip.errors import StreamRejected, StreamReset
from raftmux.gossip.framing import FrameDecoder, FramingError, frameHeader
from raftmux.streamtransport import StreamTransport


class GossipStream(StreamTransport):
    """
    One ckit stream.  ``onResponse(stream, failure)`` (the dialing side) is
    called once with the answer to our POST: ``(self, None)`` on 200, else
    ``(None, failure)``.
    """

    log = Logger()

    def __init__(self, connection, streamId, maxFrameSize, metrics=None, onResponse=None):
        StreamTransport.__init__(self, connection, streamId)
        self._decoder = FrameDecoder(maxFrameSize)
        self._partialBytes = 0
        self._metrics = metrics
        self._onResponse = onResponse
        if metrics is not None:
            metrics.streams.inc()

    def __repr__(self):
        return "<GossipStream %d>" % (self.streamId,)

    @property
    def streamID(self):
        """h2's spelling of ``streamId``."""
        return self.streamId

    # -- events from the HTTP/2 connection ------------------------------------

    def responseReceived(self, status):
        """The dialing side: the answer to our POST arrived (ckit never checked it)."""
        onResponse, self._onResponse = self._onResponse, None
        if onResponse is None:
            return
        if status == 200:
            onResponse(self, None)
            return
        reason = Failure(StreamRejected(status))
        self.host.resetStream(self)
        self.host.flush()
        self.streamLost(reason)
        onResponse(None, reason)

    def cancelResponse(self):
        """Stop waiting for the answer (the dial was cancelled) and reset the stream."""
        self._onResponse = None
        self.abortConnection()

    # The HTTP/2 connection's stream-handler calls.

    def ended(self):
        self.readEnded()

    def reset(self, code):
        self.streamLost(Failure(StreamReset(code)))

    def lost(self, reason):
        self.streamLost(reason if reason is not None else Failure(ConnectionLost()))

    def writable(self, flag):
        """Unused: a stream transport's own queue waits for the window."""

    # -- framing -----------------------------------------------------------------

    def frameOutgoing(self, data):
        data = bytes(data)
        if self._metrics is not None:
            self._metrics.streamTxPackets.inc()
            self._metrics.streamTxBytes.inc(len(data))
        return frameHeader(len(data)) + data

    def write(self, data):
        if not self.writeOpen and data and self._metrics is not None:
            self._metrics.streamTxFailed.inc()
        StreamTransport.write(self, data)

    def deliverIncoming(self, data):
        before = self._decoder.buffered
        try:
            payloads = self._decoder.feed(data)
        except FramingError as e:
            self._fail(e)
            return
        if not self._hold(self._decoder.buffered - before):
            return
        metrics = self._metrics
        for payload in payloads:
            if metrics is not None:
                metrics.streamRxPackets.inc()
                metrics.streamRxBytes.inc(len(payload))
            if payload and not self.disconnected:
                self.protocol.dataReceived(payload)

    def endIncoming(self):
        self._decoder.end()

    def _hold(self, delta):
        """Partial frames kept here count against the connection's limit."""
        self._partialBytes += delta
        if self.host.holdBytes(delta):
            return True
        self._fail(FramingError("connection holds too many partial frames"),
                   ErrorCodes.ENHANCE_YOUR_CALM)
        return False

    def _fail(self, error, code=ErrorCodes.PROTOCOL_ERROR):
        self.log.info("gossip stream {stream!r} failed: {error}", stream=self, error=error)
        self.host.resetStreamWith(self, code)
        self.host.flush()
        self.streamLost(Failure(StreamReset(code)))

    def connectionClosed(self, reason):
        self.host.holdBytes(-self._partialBytes)
        self._partialBytes = 0
        metrics = self._metrics
        if metrics is not None:
            metrics.streams.dec()
            if _failed(reason):
                metrics.streamRxFailed.inc()
        onResponse, self._onResponse = self._onResponse, None
        if onResponse is not None:
            onResponse(None, reason)


def _failed(reason):
    """Did the stream end in failure (not a close, an abort of ours, or a refusal)?"""
    if reason.check(ConnectionDone, ConnectionAborted, StreamRejected):
        return False
    return not (reason.check(StreamReset) and reason.value.code == ErrorCodes.NO_ERROR)
