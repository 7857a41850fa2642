"""
A muxado stream, as the Twisted transport its protocol writes to.

It behaves like a TCP connection to the protocol above it: ``write`` never
blocks (bytes beyond the send window wait here and pause a registered
producer), ``loseConnection`` sends FIN after what is buffered, half-close
works both ways for ``IHalfCloseableProtocol``s, ``abortConnection`` sends
RST, and ``pauseProducing`` stops delivery, so the peer's window, and with it
the receive buffer, stays bounded.
"""

from collections import deque

from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.muxado.errors import ErrorCode, StreamRefused, StreamReset

# A registered streaming producer is paused while this many bytes wait for
# send window, like a TCP transport's 64 KiB buffer.
HIGH_WATER = 65536

# Pull producers get at most this many resumeProducing calls in one go before
# the stream yields to the reactor.
_PULL_BURST = 64

_OPEN, _CLOSING, _HALF_CLOSING, _WRITE_CLOSED = range(4)

_REFUSED_CODES = (ErrorCode.STREAM_REFUSED, ErrorCode.ACCEPT_QUEUE_FULL)


@implementer(ITransport, IConsumer, IPushProducer)
class MuxadoStream:
    """
    One stream of a ``MuxadoSession``.  ``streamId`` is its muxado ID;
    ``getPeer``/``getHost`` are the session transport's addresses, so a
    twisted.web request on a stream still sees the real client address.
    """

    def __init__(self, session, streamId):
        self.session = session
        self.streamId = streamId
        self.protocol = None
        self.connected = False
        self.disconnecting = False
        self.disconnected = False
        self._writeState = _OPEN
        self._readClosed = False
        self._pending = deque()
        self._headOffset = 0
        self._pendingSize = 0
        self._producer = None
        self._streaming = True
        self._producerPaused = False
        self._pulling = False
        self._readPaused = False
        self._inbox = deque()
        self._eofPending = False
        self._typeSniff = False

    def __repr__(self):
        return "<MuxadoStream %d of %r>" % (self.streamId, self.session)

    # -- wiring ---------------------------------------------------------------

    def _attach(self, protocol):
        """Connect ``protocol`` and give it whatever arrived before it was chosen."""
        self.protocol = protocol
        self.connected = True
        protocol.makeConnection(self)
        if (self._inbox or self._eofPending) and not self._readPaused:
            self._drainInbox()

    # -- ITransport -----------------------------------------------------------------

    def write(self, data):
        if self._writeState != _OPEN or self.disconnected or not data:
            return
        if self._pending:
            self._pending.append(data)
            self._pendingSize += len(data)
        else:
            session = self.session
            sent = session._conn.sendData(self.streamId, data)
            session._flush()
            if sent < len(data):
                self._pending.append(data)
                self._headOffset = sent
                self._pendingSize += len(data) - sent
        if self._producer is not None:
            self._updateProducer(writing=True)

    def writeSequence(self, iovec):
        self.write(b"".join(iovec))

    def loseConnection(self):
        """FIN after the buffered bytes, then the stream is closed both ways."""
        self._closeWrite(_CLOSING)

    def loseWriteConnection(self):
        """Half-close: FIN after the buffered bytes; reading goes on."""
        self._closeWrite(_HALF_CLOSING)

    def abortConnection(self):
        """Drop buffered bytes and reset the stream (RST STREAM_CANCELLED)."""
        if self.disconnected:
            return
        self.session._conn.resetStream(self.streamId, ErrorCode.STREAM_CANCELLED)
        self.session._flush()
        self._connectionLost(Failure(ConnectionAborted()), later=True)

    def getPeer(self):
        return self.session.transport.getPeer()

    def getHost(self):
        return self.session.transport.getHost()

    # -- IConsumer ----------------------------------------------------------------

    def registerProducer(self, producer, streaming):
        if self._producer is not None:
            raise RuntimeError("Cannot register producer %s, because producer %s was "
                               "never unregistered." % (producer, self._producer))
        if self.disconnected:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = streaming
        self._producerPaused = False
        self.session._producingStreams.add(self)
        if streaming:
            self._updateProducer()
        else:
            self._pull()

    def unregisterProducer(self):
        self._producer = None
        self.session._producingStreams.discard(self)
        if self._writeState in (_CLOSING, _HALF_CLOSING) and not self._pending:
            self._finishWrite()

    # -- IPushProducer (delivery of received bytes to the protocol) -----------------

    def pauseProducing(self):
        self._readPaused = True

    def resumeProducing(self):
        if not self._readPaused or self.disconnected:
            return
        self._readPaused = False
        self._drainInbox()

    def stopProducing(self):
        self.loseConnection()

    # -- sending side internals ---------------------------------------------------

    def _closeWrite(self, state):
        if self.disconnected:
            return
        current = self._writeState
        if current == _OPEN:
            self._writeState = state
            self.disconnecting = state == _CLOSING
            if not self._pending:
                self._finishWrite()
        elif state == _CLOSING and current == _HALF_CLOSING:
            self._writeState = _CLOSING
            self.disconnecting = True
        elif state == _CLOSING and current == _WRITE_CLOSED:
            # Already half-closed; now stop reading too (Go's Close()).
            self.session._conn.closeStream(self.streamId)
            self.session._flush()
            self._connectionLost(Failure(ConnectionDone()), later=True)

    def _finishWrite(self):
        session = self.session
        if self._writeState == _CLOSING:
            self._writeState = _WRITE_CLOSED
            session._conn.closeStream(self.streamId)
            session._flush()
            self._connectionLost(Failure(ConnectionDone()), later=True)
            return
        self._writeState = _WRITE_CLOSED
        closed = session._conn.endStream(self.streamId)
        session._flush()
        halfCloseable = IHalfCloseableProtocol(self.protocol, None)
        if halfCloseable is not None:
            halfCloseable.writeConnectionLost()
        if closed or self._readClosed:
            self._connectionLost(Failure(ConnectionDone()), later=True)

    def _windowOpened(self):
        """The peer gave credit back: send what waits, maybe resume the producer."""
        if not self._pending:
            return
        conn = self.session._conn
        streamId = self.streamId
        pending = self._pending
        while pending:
            window = conn.sendWindow(streamId)
            if window <= 0:
                break
            head = pending[0]
            offset = self._headOffset
            left = len(head) - offset
            if left <= window:
                piece = head[offset:] if offset else head
                pending.popleft()
                self._headOffset = 0
            else:
                piece = head[offset:offset + window]
                self._headOffset = offset + window
            conn.sendData(streamId, piece)
            self._pendingSize -= len(piece)
        self.session._flush()
        if not pending and self._writeState in (_CLOSING, _HALF_CLOSING):
            self._finishWrite()
        else:
            self._updateProducer()

    def _updateProducer(self, writing=False):
        producer = self._producer
        if producer is None:
            return
        if not self._streaming:
            if not writing:
                self._pull()
            return
        shouldPause = self.session._paused or self._pendingSize >= HIGH_WATER
        if shouldPause != self._producerPaused:
            self._producerPaused = shouldPause
            if shouldPause:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    def _pull(self):
        """Drive a pull producer while there is room, a bounded burst at a time."""
        if self._pulling:
            return
        self._pulling = True
        try:
            for _ in range(_PULL_BURST):
                producer = self._producer
                if (producer is None or self._streaming or self._pending
                        or self.session._paused or self.disconnected):
                    return
                producer.resumeProducing()
            if self._producer is not None and not self._streaming:
                self.session._callLater(0, self._pull)
        finally:
            self._pulling = False

    # -- receiving side internals (called by the session) -----------------------------

    def _dataReceived(self, data):
        if self._readPaused or self._inbox or self.protocol is None:
            self._inbox.append(data)
            if self._typeSniff:
                self.session._sniffStreamType(self)
            return
        self.protocol.dataReceived(data)
        self.session._conn.acknowledgeReceivedData(self.streamId, len(data))

    def _drainInbox(self):
        conn = self.session._conn
        inbox = self._inbox
        while inbox and not self._readPaused and not self.disconnected:
            data = inbox.popleft()
            self.protocol.dataReceived(data)
            conn.acknowledgeReceivedData(self.streamId, len(data))
        self.session._flush()
        if not inbox and self._eofPending and not self._readPaused:
            self._eofPending = False
            self._deliverEof()

    def _ended(self):
        """The peer sent FIN."""
        if self._inbox or self._readPaused or self.protocol is None:
            self._eofPending = True
            if self._typeSniff:
                self.session._sniffStreamType(self)
            return
        self._deliverEof()

    def _deliverEof(self):
        if self.disconnected:
            return
        self._readClosed = True
        halfCloseable = IHalfCloseableProtocol(self.protocol, None)
        if halfCloseable is None:
            self.loseConnection()
            return
        halfCloseable.readConnectionLost()
        if self._writeState == _WRITE_CLOSED:
            self._connectionLost(Failure(ConnectionDone()))

    def _reset(self, code, remote):
        if remote and code in _REFUSED_CODES:
            error = StreamRefused(code, retryable=True)
        else:
            error = StreamReset(code, remote)
        self._connectionLost(Failure(error))

    def _connectionLost(self, reason, later=False):
        """
        Tear down and tell the protocol.  ``later`` defers the protocol's
        ``connectionLost`` to the next reactor turn, as TCP does, for closes
        the protocol itself asked for: code such as twisted.web's HTTP client
        sets state after calling ``loseConnection`` and expects no re-entry.
        """
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        self.disconnecting = False
        self._writeState = _WRITE_CLOSED
        self._pending.clear()
        self._pendingSize = 0
        self._inbox.clear()
        self.session._streamGone(self)
        producer = self._producer
        if producer is not None:
            self._producer = None
            producer.stopProducing()
        if self.protocol is not None:
            if later:
                self.session._notifyLater(self.protocol, reason)
            else:
                self.protocol.connectionLost(reason)
