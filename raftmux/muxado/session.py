"""
``MuxadoSession``: the Twisted protocol that runs a muxado session over one
transport (TCP, TLS, or anything else), turning the sans-IO
``MuxadoConnection``'s events into stream transports and protocol calls.
"""

from collections import deque

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux._log import hotLogger
from raftmux._tcp import setNoDelay
from raftmux.muxado import connection as events
from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.connection import MuxadoConnection
from raftmux.muxado.errors import (
    ErrorCode,
    SessionClosed,
    StreamRefused,
    StreamsExhausted,
    codeName,
)
from raftmux.muxado.heartbeat import HEARTBEAT_TYPE, HeartbeatRequester, HeartbeatResponder
from raftmux.muxado.metrics import SessionMetrics
from raftmux.muxado.stream import MuxadoStream

_hot = hotLogger("raftmux.muxado")

# Bytes the session's transport may buffer before pausing the session (and
# its read size): two 64 KiB DATA frames with their headers.
TRANSPORT_BUFFER = 2 * (65536 + 8)


@implementer(IPushProducer)
class MuxadoSession(Protocol):
    """
    One muxado session.  ``isClient`` picks the stream-ID parity (the dialer
    is the client).  Each stream the peer opens is given to
    ``streamFactory.buildProtocol(peerAddress)``; without a factory, peer
    streams wait (up to ``config.acceptBacklog``) for ``acceptStream``.

    The session is a push producer toward its transport: when the transport's
    buffer fills it pauses every stream's registered producer, so a slow peer
    pushes back all the way to the writers.

    Metrics go to ``registry`` (default ``raftmux.metrics.REGISTRY``).
    """

    log = Logger()

    def __init__(self, isClient, streamFactory=None, config=None, reactor=None, registry=None):
        self.isClient = isClient
        self.streamFactory = streamFactory
        self.config = config = config if config is not None else MuxadoConfig()
        self._reactor = reactor
        self._conn = MuxadoConnection(
            isClient, window=config.maxWindowSize,
            maxIncomingStreams=config.maxIncomingStreams,
            maxGoAwayDebug=config.maxGoAwayDebug,
            windowUpdateThreshold=config.windowUpdateThreshold)
        self._streams = {}
        self._producingStreams = set()
        self._paused = False
        self._acceptQueue = deque()
        self._acceptWaiters = deque()
        self._closedWaiters = []
        self._closing = False
        self._closeReason = None      # SessionClosed, once the session is over
        self._localCode = None        # why this side ended the session, if it did
        self._heartbeat = None
        self._dispatching = False
        self._lostLater = []          # (protocol, reason) to tell after this dispatch
        self._metrics = SessionMetrics(registry, "client" if isClient else "server")

    def __repr__(self):
        return "<MuxadoSession %s %s>" % ("client" if self.isClient else "server",
                                          "closed" if self._closeReason else "open")

    # -- public API ---------------------------------------------------------------

    @property
    def streams(self):
        """The open streams, by ID (read-only view for metrics and tests)."""
        return dict(self._streams)

    @property
    def isOpen(self):
        """Can ``openStream`` succeed (connected, no GOAWAY either way)?"""
        return (self._closeReason is None and self.transport is not None
                and not self._conn.goAwaySent and self._conn.goAwayReceived is None)

    def openStream(self, protocol):
        """
        Open a stream and connect ``protocol`` to it.  Returns a Deferred that
        fires with ``protocol`` once it is connected (at once: like Go, the
        peer hears of the stream with its first DATA frame).  Fails with
        ``StreamRefused`` (retryable) after the peer's GOAWAY,
        ``StreamsExhausted`` when the ID space is used up, ``SessionClosed``
        when the session is over.
        """
        if self._closeReason is not None or self._conn.goAwaySent or self.transport is None:
            return fail(self._closeReason or SessionClosed(ErrorCode.SESSION_CLOSED))
        if self._conn.goAwayReceived is not None:
            return fail(StreamRefused(ErrorCode.REMOTE_GONE_AWAY, retryable=True,
                                      message="the peer has sent GOAWAY"))
        try:
            streamId = self._conn.openStream()
        except ValueError:
            return fail(StreamsExhausted("all stream IDs of this session are used"))
        stream = MuxadoStream(self, streamId)
        self._streams[streamId] = stream
        self._metrics.localStreams.inc()
        _hot.debug("muxado: opened stream {streamId}", streamId=streamId)
        stream._attach(protocol)
        return succeed(protocol)

    def acceptStream(self, protocol):
        """
        Connect ``protocol`` to the next stream the peer opens (for sessions
        without a stream factory).  Returns a Deferred firing with ``protocol``.
        """
        if self._acceptQueue:
            stream = self._acceptQueue.popleft()
            stream._attach(protocol)
            self._flush()
            return succeed(protocol)
        if self._closeReason is not None:
            return fail(self._closeReason)
        d = Deferred(lambda d: self._acceptWaiters.remove((d, protocol)))
        self._acceptWaiters.append((d, protocol))
        return d

    def goAway(self, code=ErrorCode.NO_ERROR, debug=b""):
        """
        Send GOAWAY(code, debug) and close the transport right after it: a Go
        peer misreads anything sent after a GOAWAY (spec 4.4).  Streams still
        open fail with ``SessionClosed``.
        """
        if self._localCode is None:
            self._localCode = code
        self._conn.goAway(code, debug)
        self._flush()

    def close(self):
        """Close cleanly, as Go's ``Close()``: GOAWAY(NO_ERROR, "no error")."""
        self.goAway(ErrorCode.NO_ERROR, b"no error")

    def whenClosed(self):
        """
        A Deferred that fires, when the session is over, with the
        ``SessionClosed`` describing why (like Go's ``Wait()``).
        """
        if self._closeReason is not None:
            return succeed(self._closeReason)
        d = Deferred()
        self._closedWaiters.append(d)
        return d

    @property
    def lastHeartbeatRTT(self):
        """Seconds of the last heartbeat round trip, or None."""
        return None if self._heartbeat is None else self._heartbeat.lastRTT

    # -- Protocol ---------------------------------------------------------------------

    def connectionMade(self):
        # A TCP transport pauses its producer once more than bufferSize (64 KiB)
        # waits to be sent, and reads bufferSize at a time.  A 64 KiB stream
        # write plus its 8-byte header is just over that, so every write would
        # pause every stream: let two such frames queue (measured: +30% bulk).
        if getattr(self.transport, "bufferSize", TRANSPORT_BUFFER) < TRANSPORT_BUFFER:
            self.transport.bufferSize = TRANSPORT_BUFFER
        self._metrics.sessions.inc()
        # Window updates, heartbeats and small stream messages must not wait
        # for delayed ACKs (measured: open/echo/close +10-30%).
        setNoDelay(self.transport)
        self.transport.registerProducer(self, True)
        if self.config.heartbeatInterval is not None:
            self._heartbeat = HeartbeatRequester(
                self.config.heartbeatInterval, self.config.heartbeatTolerance,
                self._clock(), self._onHeartbeat)
            self.openStream(self._heartbeat)

    def dataReceived(self, data):
        self._dispatching = True
        try:
            self._dispatch(data)
        finally:
            self._dispatching = False
        if self._lostLater:
            self._tellLost()

    def _dispatch(self, data):
        streams = self._streams
        for event in self._conn.receiveData(data):
            kind = event.__class__
            if kind is events.DataReceived:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream._dataReceived(event.data)
            elif kind is events.WindowUpdated:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream._windowOpened()
            elif kind is events.StreamOpened:
                self._streamOpened(event)
            elif kind is events.StreamEnded:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream._ended()
            elif kind is events.StreamReset:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream._reset(event.code, event.remote)
            elif kind is events.StreamRefusedLocally:
                self._metrics.refused(event.code)
                self.log.info("muxado: refused stream {streamId} from {peer} ({code})",
                              streamId=event.streamId, peer=self._peer(),
                              code=codeName(event.code))
            elif kind is events.GoAwayReceived:
                self._goAwayReceived(event)
            elif kind is events.ConnectionTerminated:
                self._localCode = event.code
                self._metrics.protocolError(event.code)
                self.log.warn("muxado: closing session with {peer}: {message} ({code})",
                              peer=self._peer(), message=event.message,
                              code=codeName(event.code))
        self._flush()

    def connectionLost(self, reason):
        self._tellLost()
        self._metrics.sessions.dec()
        goAway = self._conn.goAwayReceived
        localCode = self._localCode
        if localCode is None:
            localCode = ErrorCode.PEER_EOF
        self._closeReason = closed = SessionClosed(
            localCode,
            None if goAway is None else goAway.code,
            b"" if goAway is None else goAway.debug)
        self._conn.terminated = self._conn.terminated or events.ConnectionTerminated(
            localCode, "transport closed")
        for stream in list(self._streams.values()):
            stream._connectionLost(Failure(closed))
        self._streams.clear()
        for stream in self._acceptQueue:
            stream._connectionLost(Failure(closed))
        self._acceptQueue.clear()
        waiters, self._acceptWaiters = self._acceptWaiters, deque()
        for d, _ in waiters:
            d.errback(closed)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        closedWaiters, self._closedWaiters = self._closedWaiters, []
        for d in closedWaiters:
            d.callback(closed)

    # -- IPushProducer (toward the transport) -----------------------------------------

    def pauseProducing(self):
        self._paused = True
        for stream in list(self._producingStreams):
            stream._updateProducer()

    def resumeProducing(self):
        self._paused = False
        for stream in list(self._producingStreams):
            stream._updateProducer()

    def stopProducing(self):
        pass

    # -- internals -------------------------------------------------------------------

    def _flush(self):
        conn = self._conn
        if conn._out:
            self.transport.writeSequence(conn.dataToSend())
        if conn.goAwaySent and not self._closing:
            # Nothing may follow a GOAWAY toward a Go peer: close right away.
            # Unregister first: a TLS transport waits for its producer to go
            # before it starts its shutdown.
            self._closing = True
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _streamOpened(self, event):
        stream = MuxadoStream(self, event.streamId)
        self._streams[event.streamId] = stream
        self._metrics.remoteStreams.inc()
        _hot.debug("muxado: peer opened stream {streamId}", streamId=event.streamId)
        if self.config.answerHeartbeats and event.length >= len(HEARTBEAT_TYPE):
            # Possibly Go's heartbeat stream: decide on the first 4 bytes, all
            # of which are in this first frame.
            stream._typeSniff = True
        else:
            self._attachIncoming(stream)

    def _sniffStreamType(self, stream):
        """Called as a type-sniffing stream's first bytes arrive."""
        head = b"".join(stream._inbox)
        if len(head) < len(HEARTBEAT_TYPE) and not stream._eofPending:
            return
        stream._typeSniff = False
        if head.startswith(HEARTBEAT_TYPE):
            stream._inbox.clear()
            if len(head) > len(HEARTBEAT_TYPE):
                stream._inbox.append(head[len(HEARTBEAT_TYPE):])
            self._conn.acknowledgeReceivedData(stream.streamId, len(HEARTBEAT_TYPE))
            stream._attach(HeartbeatResponder())
        else:
            self._attachIncoming(stream)

    def _attachIncoming(self, stream):
        if self.streamFactory is not None:
            protocol = self.streamFactory.buildProtocol(self.transport.getPeer())
            if protocol is None:
                self._refuse(stream, ErrorCode.STREAM_REFUSED)
                return
            stream._attach(protocol)
        elif self._acceptWaiters:
            d, protocol = self._acceptWaiters.popleft()
            stream._attach(protocol)
            d.callback(protocol)
        elif len(self._acceptQueue) < self.config.acceptBacklog:
            self._acceptQueue.append(stream)
        else:
            self._refuse(stream, ErrorCode.ACCEPT_QUEUE_FULL)

    def _refuse(self, stream, code):
        self._metrics.refused(code)
        self._conn.resetStream(stream.streamId, code)
        stream._connectionLost(Failure(StreamRefused(code, retryable=True)))

    def _goAwayReceived(self, event):
        self._metrics.goAwaysReceived.inc()
        self.log.info("muxado: {peer} sent GOAWAY ({code}, {debug!r}); "
                      "{n} of our streams refused", peer=self._peer(),
                      code=codeName(event.code), debug=event.debug, n=len(event.refused))
        for streamId in event.refused:
            stream = self._streams.get(streamId)
            if stream is not None:
                stream._connectionLost(Failure(StreamRefused(
                    ErrorCode.REMOTE_GONE_AWAY, retryable=True,
                    message="the peer sent GOAWAY before it saw stream %d" % (streamId,))))

    def _streamGone(self, stream):
        self._streams.pop(stream.streamId, None)
        self._producingStreams.discard(stream)
        if stream.protocol is None and stream in self._acceptQueue:
            self._acceptQueue.remove(stream)

    def _onHeartbeat(self, rtt, timedOut):
        callback = self.config.onHeartbeat
        if callback is not None:
            callback(rtt, timedOut)
        if timedOut:
            self._metrics.heartbeatTimeouts.inc()
        if timedOut and self.config.closeOnHeartbeatTimeout and self.transport is not None:
            self.log.warn("muxado: no heartbeat echo from {peer}; closing the session",
                          peer=self._peer())
            self._localCode = ErrorCode.SESSION_CLOSED
            self.transport.abortConnection()

    def _clock(self):
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    def _notifyLater(self, protocol, reason):
        """
        Call ``protocol.connectionLost(reason)`` soon, never from inside the
        call that closed it (TCP never does; twisted.web's HTTP client relies
        on it): after the current dispatch of received data, or on the next
        reactor turn.
        """
        self._lostLater.append((protocol, reason))
        if not self._dispatching and len(self._lostLater) == 1:
            self._callLater(0, self._tellLost)

    def _tellLost(self):
        pending, self._lostLater = self._lostLater, []
        for protocol, reason in pending:
            protocol.connectionLost(reason)

    def _callLater(self, delay, f, *args):
        return self._clock().callLater(delay, f, *args)

    def _peer(self):
        try:
            return self.transport.getPeer()
        except Exception:
            return None
