# -*- test-case-name: raftmux.test.test_gossip_stream -*-
"""
A ckit ``/stream`` as a Twisted transport.

Each ``write`` is one frame in our half of the HTTP/2 stream (request body
on the dialing side, response body on the accepting side); frames the peer
sends are joined into the byte stream its protocol sees.  Back-pressure
both ways rides on HTTP/2 flow control: received bytes are acknowledged
only when they have been handed to the protocol (so a paused or absent
protocol stops the peer at its window), and a registered producer is paused
while our queued, unsent bytes are above the high-water mark.

Attach a protocol with ``stream.attach(protocol)``; until then received
bytes wait, unacknowledged.
"""

from collections import deque

from h2.errors import ErrorCodes
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.gossip.errors import StreamRejected, StreamReset
from raftmux.gossip.framing import FrameDecoder, FramingError, frameHeader


@implementer(ITransport, IConsumer, IPushProducer)
class GossipStream:
    log = Logger()

    def __init__(self, connection, streamID, host, peer, maxFrameSize, metrics=None,
                 isClient=False):
        self._conn = connection
        self.streamID = streamID
        self._host = host
        self._peer = peer
        self._decoder = FrameDecoder(maxFrameSize)
        self._held = 0
        self._metrics = metrics
        self.isClient = isClient
        self.protocol = None
        self.producer = None
        self._inbox = deque()
        self._readPaused = False
        self._writePaused = False
        self._remoteEnded = False
        self._eofDelivered = False
        self._localEnded = False
        self._draining = False
        self.disconnecting = False
        self.done = False
        self._reason = None
        self._response = None  # (callback) on the dialing side, until the answer
        if metrics is not None:
            metrics.streams.inc()

    def __repr__(self):
        return "<GossipStream %d %s>" % (self.streamID, self._peer)

    # -- attaching --------------------------------------------------------

    def attach(self, protocol):
        """Connect ``protocol`` to this stream and deliver what has arrived."""
        self.protocol = protocol
        protocol.makeConnection(self)
        if self.done:
            protocol.connectionLost(self._reason)
            return
        self._drain()

    # -- handler interface (called by the HTTP/2 connection) ---------------

    def dataReceived(self, data, flowLength):
        self._inbox.append((data, flowLength))
        self._drain()

    def ended(self):
        self._remoteEnded = True
        self._drain()

    def reset(self, code):
        self._finish(Failure(StreamReset(code)), failed=code != ErrorCodes.NO_ERROR)

    def lost(self, reason):
        self._finish(reason if reason is not None else Failure(ConnectionLost()), failed=True)

    def responseReceived(self, status):
        """The dialing side: the answer to our POST arrived (ckit never checked it)."""
        response, self._response = self._response, None
        if response is None:
            return
        if status == 200:
            response(self, None)
        else:
            self._conn.resetStream(self.streamID, ErrorCodes.CANCEL)
            reason = Failure(StreamRejected(status))
            self._finish(reason)
            response(None, reason)

    def writable(self, flag):
        self._writePaused = not flag
        if self.producer is not None:
            if flag:
                self.producer.resumeProducing()
            else:
                self.producer.pauseProducing()

    def _drain(self):
        if self._draining:
            return
        self._draining = True
        try:
            self._drainLoop()
        finally:
            self._draining = False

    def _drainLoop(self):
        conn = self._conn
        while self._inbox and not self.done and self.protocol is not None and \
                not self._readPaused:
            data, flowLength = self._inbox.popleft()
            before = self._decoder.buffered
            try:
                payloads = self._decoder.feed(data)
            except FramingError as e:
                self._fail(e)
                return
            conn.acknowledge(self.streamID, flowLength)
            if not self._hold(self._decoder.buffered - before):
                return
            for payload in payloads:
                if self._metrics is not None:
                    self._metrics.streamRxPackets.inc()
                    self._metrics.streamRxBytes.inc(len(payload))
                if payload and not self.done:
                    self.protocol.dataReceived(payload)
        if self._remoteEnded and not self._inbox and not self._eofDelivered and \
                not self.done and self.protocol is not None:
            self._eofDelivered = True
            try:
                self._decoder.end()
            except FramingError as e:
                self._fail(e)
                return
            if IHalfCloseableProtocol.providedBy(self.protocol):
                self.protocol.readConnectionLost()
                if self._localEnded:
                    self._finish(Failure(ConnectionDone()))
            else:
                self.loseConnection()

    def _hold(self, delta):
        self._held += delta
        if self._conn.holdBytes(delta):
            return True
        self._fail(FramingError("connection holds too many partial frames"),
                   ErrorCodes.ENHANCE_YOUR_CALM)
        return False

    def _fail(self, error, code=ErrorCodes.PROTOCOL_ERROR):
        self.log.info("gossip stream {stream!r} failed: {error}", stream=self, error=error)
        self._conn.resetStream(self.streamID, code)
        self._finish(Failure(error), failed=True)

    def _finish(self, reason, failed=False):
        if self.done:
            return
        self.done = True
        self._reason = reason
        self._inbox.clear()
        self._conn.holdBytes(-self._held)
        self._held = 0
        self._conn.forget(self.streamID)
        self._conn.streamFinished(self.streamID)
        if self._metrics is not None:
            self._metrics.streams.dec()
            if failed:
                self._metrics.streamRxFailed.inc()
        if self._response is not None:
            response, self._response = self._response, None
            response(None, reason)
        if self.producer is not None:
            self.producer.stopProducing()
            self.producer = None
        if self.protocol is not None:
            self.protocol.connectionLost(reason)

    # -- ITransport ---------------------------------------------------------

    def write(self, data):
        if self.done or self._localEnded:
            if self._metrics is not None:
                self._metrics.streamTxFailed.inc()
            return
        data = bytes(data)
        if self._metrics is not None:
            self._metrics.streamTxPackets.inc()
            self._metrics.streamTxBytes.inc(len(data))
        self._conn.sendData(self.streamID, frameHeader(len(data)) + data)

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def loseWriteConnection(self):
        """Half-close: END_STREAM after what is queued; keep reading."""
        if self.done or self._localEnded:
            return
        self._localEnded = True
        self._conn.endStream(self.streamID)
        if self._eofDelivered:
            self._finish(Failure(ConnectionDone()))

    def loseConnection(self):
        """
        Finish our half after the queued frames; if the peer may still send,
        RST_STREAM (CANCEL from the dialer, as Go's client does; NO_ERROR
        from the server, as Go's server does after its handler returns).
        """
        if self.done:
            return
        self.disconnecting = True
        code = ErrorCodes.CANCEL if self.isClient else ErrorCodes.NO_ERROR
        if not self._localEnded:
            self._localEnded = True
            self._conn.endStream(self.streamID, resetCode=code)
        elif not self._remoteEnded:
            self._conn.resetStream(self.streamID, code)
        self._finish(Failure(ConnectionDone()))

    def abortConnection(self):
        if self.done:
            return
        self._conn.resetStream(self.streamID, ErrorCodes.CANCEL)
        self._finish(Failure(ConnectionLost("stream aborted")))

    def getPeer(self):
        return self._peer

    def getHost(self):
        return self._host

    # -- IConsumer ------------------------------------------------------------

    def registerProducer(self, producer, streaming):
        if self.producer is not None:
            raise RuntimeError("a producer is already registered")
        self.producer = producer
        if self._writePaused:
            producer.pauseProducing()
        elif not streaming:
            producer.resumeProducing()

    def unregisterProducer(self):
        self.producer = None

    # -- IPushProducer (the protocol pushes back on our reading) ---------------

    def pauseProducing(self):
        self._readPaused = True

    def resumeProducing(self):
        self._readPaused = False
        self._drain()

    def stopProducing(self):
        self.loseConnection()
