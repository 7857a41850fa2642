# -*- test-case-name: raftmux.test.test_gossip -*-
"""
A ckit ``/stream`` as a Twisted transport: a body stream of the HTTP/2
shell (``raftmux.h2.H2Stream``, itself on the one stream-transport base)
whose payload is framed.

Each ``write`` is one frame in our half of the HTTP/2 stream (request body
on the dialing side, response body on the accepting side); frames the peer
sends are joined into the byte stream its protocol sees.  Back-pressure
both ways rides on HTTP/2 flow control (see ``raftmux.streamtransport``).

Attach a protocol with ``stream.attach(protocol)``; until then received
bytes wait, unacknowledged.
"""

from h2.errors import ErrorCodes
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from raftmux.gossip.errors import StreamRejected
from raftmux.gossip.framing import FrameDecoder, FramingError, frameHeader
from raftmux.h2 import H2Stream, StreamReset, statusOf


class GossipStream(H2Stream):
    """
    One ckit stream.  ``onResponse(stream, failure)`` (the dialing side) is
    called once with the answer to our POST: ``(self, None)`` on 200, else
    ``(None, failure)``.
    """

    log = Logger()

    def __init__(self, connection, streamId, maxFrameSize, metrics=None, onResponse=None,
                 request=None):
        H2Stream.__init__(self, connection, streamId, request)
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

    # -- the answer to our POST (dialing side) -------------------------------------

    def headersReceived(self, headers):
        H2Stream.headersReceived(self, headers)
        onResponse, self._onResponse = self._onResponse, None
        if onResponse is None:
            return
        status = statusOf(headers)
        if status == 200:
            onResponse(self, None)
            return
        reason = Failure(StreamRejected(status))
        self.resetCode = ErrorCodes.CANCEL
        self.host.resetStream(self)
        self.host.flush()
        self.streamLost(reason)
        onResponse(None, reason)

    def cancelResponse(self):
        """Stop waiting for the answer (the dial was cancelled) and reset the stream."""
        self._onResponse = None
        self.abortConnection()

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
        H2Stream.write(self, data)

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
        H2Stream.endIncoming(self)

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
        self.resetCode = code
        self.host.resetStream(self)
        self.host.flush()
        self.streamLost(Failure(StreamReset(code, remote=False)))

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
