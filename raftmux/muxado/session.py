# -*- test-case-name: raftmux.test.test_muxado_session -*-
"""
``MuxadoSession``: the Twisted protocol that runs a muxado session (either
generation) over one transport (TCP, TLS, or anything else), turning the
sans-IO connection's events into stream transports and protocol calls.

The session is the ``IStreamHost`` of its ``MuxadoStream``s: it frames what
they send, within the windows the connection keeps, and schedules them when
the underlying transport pushes back (larger ``priority`` first, round robin
among equals).
"""

from __future__ import annotations

from collections.abc import Mapping
from struct import Struct
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux._log import RateLimitedLog, hotLogger
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
from raftmux.muxado.generation import NEITHER, firstFrameVersion, likelyVersion
from raftmux.muxado.heartbeat import (
    HEARTBEAT_TYPE,
    V1_HEARTBEAT_PRIORITY,
    V1_HEARTBEAT_TYPE,
    V1_MIN_EXTENSION_TYPE,
    HeartbeatRequester,
    HeartbeatResponder,
)
from raftmux.muxado.metrics import SessionMetrics
from raftmux.muxado.stream import MuxadoStream
from raftmux.streamtransport import IStreamHost

_hot = hotLogger("raftmux.muxado")
_u32 = Struct(">I")

# Bytes the session's transport may buffer before pausing the session (and
# its read size): two 64 KiB DATA frames with their headers.
TRANSPORT_BUFFER = 2 * (65536 + 8)

MAX_STREAM_TYPE = 0xFFFFFFFF
MAX_PRIORITY = 0x7FFFFFFF


@implementer(IPushProducer, IStreamHost)
class MuxadoSession(Protocol):
    """
    One muxado session.  ``isClient`` picks the stream-ID parity (the dialer
    is the client).  ``version`` is the generation spoken: a client's comes
    from ``config.version``; a server's is 1 or 2 to accept only that one,
    or None to tell it from the client's first frame.

    Each stream the peer opens goes to ``streamFactories[streamType]`` when
    its type is listed, else to ``streamFactory.buildProtocol(peerAddress)``;
    with neither, peer streams wait (up to ``config.acceptBacklog``) for
    ``acceptStream``.  On v2, giving ``streamFactories`` makes the session a
    typed one: every peer stream's first 4 bytes are its type (Go's
    ``TypedStreamSession``).

    The session is a push producer toward its transport: when the
    transport's buffer fills, streams queue what they write and pause their
    registered producers, so a slow peer pushes back all the way to the
    writers.  Metrics go to ``registry`` (default ``raftmux.metrics.REGISTRY``).
    """

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    log = Logger()

    def __init__(self, isClient: bool, streamFactory: IProtocolFactory | None = None,
                 config: MuxadoConfig | None = None, reactor: IReactorTime | None = None,
                 registry: CollectorRegistry | None = None,
                 streamFactories: Mapping[int, IProtocolFactory] | None = None,
                 version: int | None = None) -> None:
        self.isClient = isClient
        self.streamFactory = streamFactory
        self.streamFactories = dict(streamFactories or {})
        self.config = config = config if config is not None else MuxadoConfig()
        if isClient:
            version = config.version if config.version is not None else 2
        if version not in (None, 1, 2):
            raise ValueError("muxado version must be 1, 2 or None, not %r" % (version,))
        self._acceptVersion = version
        self._reactor = reactor
        self._conn: Any = None        # the generation's sans-IO connection, once known
        self._head = b""
        self._streams: dict[int, MuxadoStream] = {}
        # streams wanting windowOpened on resume, in order
        self._waiting: dict[MuxadoStream, None] = {}
        self._prioritised = 0         # of those, how many have a non-zero priority
        self._sniffing: set[MuxadoStream] = set()  # v2 streams whose type is still being read
        self._paused = False
        self._acceptQueue: list[MuxadoStream] = []
        self._acceptWaiters: list[tuple[Deferred[Any], IProtocol]] = []
        self._pendingOpens: list[Any] = []  # openStream calls before the version is known
        self._closedWaiters: list[Deferred[SessionClosed]] = []
        # A peer flooding past the stream limit costs a few lines, not one a stream.
        self._refusals = RateLimitedLog(self.log)
        self._closing = False
        self._graceful = False        # a v1 GOAWAY waiting for open streams to end
        self._closeReason: SessionClosed | None = None  # once the session is over
        self._localCode: int | None = None  # why this side ended the session, if it did
        self._heartbeat: HeartbeatRequester | None = None
        self._checkFirstFrame = not isClient
        self._versionTimer: Any = None
        self._dispatching = False
        self._batching = False        # inside dataReceived: one flush at its end
        self._peerAddress: IAddress | None = None
        self._soon: list[Any] = []    # (f, args) to call after this dispatch
        # Bytes received and not yet taken by the streams' protocols (so not
        # credited back), per stream and in all: past the session's
        # maxBufferedBytes the transport stops reading (see _hold).
        self._bufferedBy: dict[MuxadoStream, int] = {}
        self._buffered = 0
        self._maxBuffered = config.maxBufferedBytes
        self._readStopped = False
        self._metrics = SessionMetrics(registry, "client" if isClient else "server")
        if version is not None:
            self._conn = self._newConnection(version)

    def __repr__(self):
        return "<MuxadoSession v%s %s %s>" % (
            self.version or "?", "client" if self.isClient else "server",
            "closed" if self._closeReason else "open")

    def _newConnection(self, version):
        config = self.config
        kind: Any
        if version == 1:
            from raftmux.muxado.v1connection import MuxadoV1Connection as kind
        else:
            kind = MuxadoConnection
        return kind(self.isClient, window=config.windowFor(version),
                    maxIncomingStreams=config.maxIncomingStreams,
                    maxGoAwayDebug=config.maxGoAwayDebug,
                    windowUpdateThreshold=config.windowUpdateThreshold,
                    maxWindow=config.maxAutoWindowSize, windowBudget=config.autoWindowBudget)

    # -- public API ---------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The generation this session speaks (1 or 2), or None until a server knows."""
        if self._conn is None:
            return None
        return 2 if isinstance(self._conn, MuxadoConnection) else 1

    @property
    def streams(self) -> dict[int, MuxadoStream]:
        """The open streams, by ID (read-only view for metrics and tests)."""
        return dict(self._streams)

    @property
    def isOpen(self) -> bool:
        """Can ``openStream`` succeed (connected, no GOAWAY either way)?"""
        conn = self._conn
        return (self._closeReason is None and self.transport is not None
                and (conn is None or (not conn.goAwaySent and conn.goAwayReceived is None)))

    def openStream(self, protocol: IProtocol, streamType: int | None = None,
                   priority: int | None = None) -> Deferred[IProtocol]:
        """
        Open a stream and connect ``protocol`` to it.  Returns a Deferred that
        fires with ``protocol`` once it is connected (at once, unless a
        server does not yet know the client's generation).  ``streamType``
        (u32) and ``priority`` (31 bits, larger is more urgent) travel in a
        v1 SYN; on v2 the type is the stream's first 4 bytes (Go's typed
        streams) and the priority only orders our own sending.

        Fails with ``StreamRefused`` (retryable) after the peer's GOAWAY,
        ``StreamsExhausted`` when the ID space is used up, ``SessionClosed``
        when the session is over.
        """
        if streamType is not None and not 0 <= streamType <= MAX_STREAM_TYPE:
            return fail(ValueError("stream type %r is not a u32" % (streamType,)))
        if priority is not None and not 0 <= priority <= MAX_PRIORITY:
            return fail(ValueError("priority %r is not a 31-bit number" % (priority,)))
        conn = self._conn
        if self._closeReason is not None or self.transport is None or (
                conn is not None and conn.goAwaySent):
            return fail(self._closeReason or SessionClosed(ErrorCode.SESSION_CLOSED))
        if conn is None:
            d: Deferred[Any] = Deferred()
            self._pendingOpens.append((protocol, streamType, priority, d))
            if self._versionTimer is None:
                self._versionTimer = self._callLater(self.config.versionWait,
                                                     self._assumeVersion)
            return d
        if conn.goAwayReceived is not None:
            return fail(StreamRefused(ErrorCode.REMOTE_GONE_AWAY, retryable=True,
                                      message="the peer has sent GOAWAY"))
        v1 = self.version == 1
        try:
            if v1:
                streamId = conn.openStream(streamType, priority)
            else:
                streamId = conn.openStream()
        except ValueError:
            return fail(StreamsExhausted("all stream IDs of this session are used"))
        stream = MuxadoStream(self, streamId, streamType, priority)
        self._streams[streamId] = stream
        self._metrics.localStreams.inc()
        _hot.debug("muxado: opened stream {streamId}", streamId=streamId)
        if v1:
            self.flush()
        elif streamType is not None:
            stream.write(_u32.pack(streamType))
        stream.attach(protocol)
        return succeed(protocol)

    def acceptStream(self, protocol: IProtocol) -> Deferred[IProtocol]:
        """
        Connect ``protocol`` to the next stream the peer opens (for sessions
        without a stream factory).  Returns a Deferred firing with ``protocol``.
        """
        if self._acceptQueue:
            stream = self._acceptQueue.pop(0)
            stream.attach(protocol)
            self.flush()
            return succeed(protocol)
        if self._closeReason is not None:
            return fail(self._closeReason)
        d: Deferred[Any] = Deferred(lambda d: self._acceptWaiters.remove((d, protocol)))
        self._acceptWaiters.append((d, protocol))
        return d

    def goAway(self, code: int = ErrorCode.NO_ERROR, debug: bytes = b"") -> None:
        """
        Send GOAWAY(code, debug): the peer may open no more streams.  On v2 the
        transport is closed right after it, because a Go v2 peer misreads
        anything that follows a GOAWAY (spec 4.4).  On v1, whose Go reader
        takes a correct GOAWAY exactly, the streams already open carry on (as
        after Go v1's ``GoAway``) and the session closes once they have ended.
        Streams still open when the session closes fail with ``SessionClosed``.
        """
        self._goAway(code, debug, graceful=True)

    def close(self) -> None:
        """Close at once, as Go's ``Close()``: GOAWAY(NO_ERROR, "no error"), then the transport."""
        self._goAway(ErrorCode.NO_ERROR, b"no error", graceful=False)

    def _goAway(self, code, debug, graceful):
        if self._localCode is None:
            self._localCode = code
        if self._conn is None:
            self._closing = True
            if self.transport is not None:
                self.transport.loseConnection()
            return
        self._graceful = graceful and self.version == 1
        self._conn.goAway(code, debug)
        self.flush()

    def whenClosed(self) -> Deferred[SessionClosed]:
        """
        A Deferred that fires, when the session is over, with the
        ``SessionClosed`` describing why (like Go's ``Wait()``).
        """
        if self._closeReason is not None:
            return succeed(self._closeReason)
        d: Deferred[Any] = Deferred()
        self._closedWaiters.append(d)
        return d

    @property
    def lastHeartbeatRTT(self) -> float | None:
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
        if self._conn is not None:
            self._started()

    def _started(self):
        """The generation is known: run our heartbeat and the opens that waited for it."""
        version = self.version
        heartbeat = self.config.heartbeatFor(version)
        if heartbeat is not None:
            interval, tolerance = heartbeat
            if version == 1:
                self._heartbeat = HeartbeatRequester(
                    interval, tolerance, self._clock(), self._onHeartbeat, prefix=b"",
                    strict=True)
                opened = self.openStream(self._heartbeat, V1_HEARTBEAT_TYPE,
                                         V1_HEARTBEAT_PRIORITY)
            else:
                self._heartbeat = HeartbeatRequester(
                    interval, tolerance, self._clock(), self._onHeartbeat)
                opened = self.openStream(self._heartbeat)
            opened.addErrback(lambda _: None)  # the session is over anyway
        pending, self._pendingOpens = self._pendingOpens, []
        for protocol, streamType, priority, d in pending:
            self.openStream(protocol, streamType, priority).chainDeferred(d)

    def dataReceived(self, data):
        if self._checkFirstFrame:
            data = self._checkGeneration(data)
            if data is None:
                return
        # Everything this data makes anyone write (echoes, FINs, a new
        # stream opened from a callback) goes out in one transport write.
        self._batching = True
        try:
            self._dispatching = True
            try:
                self._dispatch(data)
            finally:
                self._dispatching = False
            if self._soon:
                self._runSoon()
        finally:
            self._batching = False
        self.flush()

    def _assumeVersion(self):
        """The client has said nothing while we wait to open streams: speak v2."""
        self._versionTimer = None
        if self._conn is None and self._closeReason is None:
            self._conn = self._newConnection(2)
            self._started()
            self.flush()

    def _checkGeneration(self, data):
        """
        A server reads the client's generation from its first frame (spec
        15.3), and refuses the other one if it speaks only one.  Returns the
        bytes to dispatch, or None.
        """
        head = self._head + data
        version = firstFrameVersion(head)
        if version is None:
            self._head = head
            return None
        self._head = b""
        self._checkFirstFrame = False
        accepted = self._acceptVersion
        if version == NEITHER:
            # Not an opening frame of either generation: let the likelier one
            # (or the only one we speak) answer it with its own GOAWAY.
            version = accepted or likelyVersion(head)
        elif accepted is not None and version != accepted:
            self.log.warn("muxado: refusing {peer}: it speaks muxado v{version}, and this "
                          "server speaks only v{accepted}", peer=self._peer(),
                          version=version, accepted=accepted)
            self._metrics.protocolError(ErrorCode.PROTOCOL_ERROR)
            self._localCode = ErrorCode.PROTOCOL_ERROR
            self._closing = True
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return None
        if self._conn is None:
            self._conn = self._newConnection(version)
            if self._versionTimer is not None:
                self._versionTimer.cancel()
                self._versionTimer = None
            _hot.debug("muxado: {peer} speaks v{version}", peer=self._peer(), version=version)
            self._started()
        return head

    def _dispatch(self, data):
        streams = self._streams
        for event in self._conn.receiveData(data):
            kind = event.__class__
            if kind is events.DataReceived:
                stream = streams.get(event.streamId)
                if stream is not None:
                    self._hold(stream, len(event.data))
                    if self._sniffing and stream in self._sniffing:
                        self._typeFromFirstBytes(stream, event.data)
                    else:
                        stream.dataReceived(event.data)
            elif kind is events.WindowUpdated:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream.windowOpened()
            elif kind is events.StreamOpened:
                self._streamOpened(event)
            elif kind is events.StreamEnded:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream.readEnded()
                    if stream in self._sniffing:
                        self._sniffStreamType(stream)
            elif kind is events.StreamReset:
                stream = streams.get(event.streamId)
                if stream is not None:
                    stream.resetReceived(event.code, event.remote)
            elif kind is events.StreamRefusedLocally:
                self._metrics.refused(event.code)
                self._refusals.emit(LogLevel.info, "muxado: refused streams",
                                    "muxado: refused stream {streamId} from {peer} ({code})",
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

    def connectionLost(self, reason=connectionDone):
        self._refusals.flush()
        self._runSoon()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._metrics.sessions.dec()
        conn = self._conn
        goAway = None if conn is None else conn.goAwayReceived
        localCode = self._localCode
        if localCode is None:
            localCode = ErrorCode.PEER_EOF
        self._closeReason = closed = SessionClosed(
            localCode,
            None if goAway is None else goAway.code,
            b"" if goAway is None else goAway.debug)
        if conn is not None and conn.terminated is None:
            conn.terminated = events.ConnectionTerminated(localCode, "transport closed")
        for stream in list(self._streams.values()):
            stream.streamLost(Failure(closed))
        self._streams.clear()
        self._waiting.clear()
        for stream in self._acceptQueue:
            stream.streamLost(Failure(closed))
        self._acceptQueue = []
        waiters, self._acceptWaiters = self._acceptWaiters, []
        for d, _ in waiters:
            d.errback(closed)
        pending, self._pendingOpens = self._pendingOpens, []
        for _, _, _, d in pending:
            d.errback(closed)
        if self._versionTimer is not None:
            self._versionTimer.cancel()
            self._versionTimer = None
        closedWaiters, self._closedWaiters = self._closedWaiters, []
        for d in closedWaiters:
            d.callback(closed)

    # -- IPushProducer (toward the transport) -----------------------------------------

    def pauseProducing(self):
        self._paused = True
        for stream in list(self._waiting):
            stream.writabilityChanged()

    def resumeProducing(self):
        self._paused = False
        waiting = self._waiting
        order = list(waiting)
        if self._prioritised:
            order.sort(key=_urgency)
        for stream in order:
            if self._paused:
                break
            stream.windowOpened()
            if stream in waiting:
                # Served: to the back of the line among its equals.
                del waiting[stream]
                waiting[stream] = None

    def stopProducing(self):
        pass

    # -- IStreamHost ---------------------------------------------------------------------

    def sendStreamData(self, stream, data):
        return self._conn.sendData(stream.streamId, data)

    def creditStream(self, stream, count):
        self._release(stream, count)
        self._conn.acknowledgeReceivedData(stream.streamId, count)

    def _hold(self, stream, count):
        """
        ``count`` bytes arrived for ``stream``.  A stream's window bounds what
        it holds, but a peer may open many streams and read none of our
        answers: past ``maxBufferedBytes`` held in all, the transport stops
        reading (TCP's own window then holds the peer back) until the
        streams' protocols have taken half of it.
        """
        self._bufferedBy[stream] = self._bufferedBy.get(stream, 0) + count
        self._buffered += count
        limit = self._maxBuffered
        if limit is not None and self._buffered > limit and not self._readStopped:
            self._readStopped = True
            self._refusals.emit(LogLevel.warn, "muxado: buffered past the session limit",
                                "muxado: {peer} has {buffered} bytes waiting in its streams "
                                "(limit {limit}); reading paused", peer=self._peer(),
                                buffered=self._buffered, limit=limit)
            self.transport.pauseProducing()

    def _release(self, stream, count):
        held = self._bufferedBy.get(stream)
        if not held:
            return
        count = min(count, held)
        if held == count:
            del self._bufferedBy[stream]
        else:
            self._bufferedBy[stream] = held - count
        self._buffered -= count
        if self._readStopped and self._buffered <= self._maxBuffered // 2 \
                and not self._closing and self.transport is not None:
            self._readStopped = False
            self.transport.resumeProducing()

    @property
    def bufferedBytes(self):
        """Bytes received on this session's streams and not yet taken by their protocols."""
        return self._buffered

    def endStream(self, stream):
        return self._conn.endStream(stream.streamId)

    def closeStream(self, stream):
        self._conn.closeStream(stream.streamId)

    def resetStream(self, stream):
        self._conn.resetStream(stream.streamId, ErrorCode.STREAM_CANCELLED)

    def flush(self):
        conn = self._conn
        if conn is None or self._batching:
            return
        if conn.hasDataToSend():
            self.transport.writeSequence(conn.dataToSend())
        if conn.goAwaySent and not self._closing and (
                not self._graceful or conn.terminated is not None or self._drained()):
            # Nothing may follow a GOAWAY toward a Go v2 peer: close right away.
            # Unregister first: a TLS transport waits for its producer to go
            # before it starts its shutdown.
            self._closing = True
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _drained(self):
        """Only heartbeat streams are left (they never end by themselves)."""
        return all(stream.streamType == V1_HEARTBEAT_TYPE for stream in self._streams.values())

    def isWritable(self):
        return not self._paused

    def setWaiting(self, stream, waiting):
        if waiting == (stream in self._waiting):
            return
        if waiting:
            self._waiting[stream] = None
        else:
            del self._waiting[stream]
        if stream.priority:
            self._prioritised += 1 if waiting else -1

    def streamGone(self, stream):
        self._streams.pop(stream.streamId, None)
        self._release(stream, self._bufferedBy.get(stream, 0))
        if self._graceful and not self._closing:
            self.callSoon(self.flush)
        self._sniffing.discard(stream)
        if stream.protocol is None and stream in self._acceptQueue:
            self._acceptQueue.remove(stream)

    def callSoon(self, f, *args):
        """
        Call ``f(*args)`` soon, never from inside the call that asked (TCP
        never calls ``connectionLost`` re-entrantly; twisted.web's HTTP client
        relies on it): after the current dispatch of received data, or on the
        next reactor turn.
        """
        self._soon.append((f, args))
        if not self._dispatching and len(self._soon) == 1:
            self._callLater(0, self._runSoon)

    def getPeer(self) -> IAddress:
        return self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self.transport.getHost()

    # -- internals -------------------------------------------------------------------

    def _streamOpened(self, event):
        streamType = event.streamType
        stream = MuxadoStream(self, event.streamId, streamType, event.priority)
        self._streams[event.streamId] = stream
        self._metrics.remoteStreams.inc()
        _hot.debug("muxado: peer opened stream {streamId}", streamId=event.streamId)
        if self.version == 1:
            if streamType == V1_HEARTBEAT_TYPE and self.config.answerHeartbeats:
                stream.attach(HeartbeatResponder())
            elif (streamType is not None and streamType >= V1_MIN_EXTENSION_TYPE
                  and streamType not in self.streamFactories):
                # An extension nobody registered: Go answers RST StreamClosed.
                self._refuse(stream, ErrorCode.STREAM_CLOSED)
            else:
                self._attachIncoming(stream)
            if not self._conn.canSend(event.streamId):
                stream.peerWillNotRead()
        elif self.streamFactories or (self.config.answerHeartbeats
                                      and event.length >= len(HEARTBEAT_TYPE)):
            # A typed stream, or maybe Go's heartbeat: decide on the first 4
            # bytes, which Go puts in the first frame.
            stream.hold()
            self._sniffing.add(stream)
        else:
            self._attachIncoming(stream)

    def _typeFromFirstBytes(self, stream, data):
        """
        The usual case at once: an untyped session's stream that does not start
        like a heartbeat is routed before its first bytes are delivered.
        """
        if (not self.streamFactories and not stream.receivedSoFar()
                and len(data) >= len(HEARTBEAT_TYPE) and not data.startswith(HEARTBEAT_TYPE)):
            self._sniffing.discard(stream)
            stream.release()
            self._attachIncoming(stream)
            stream.dataReceived(data)
            return
        stream.dataReceived(data)
        self._sniffStreamType(stream)

    def _sniffStreamType(self, stream):
        """A v2 stream's first bytes have arrived: read its type, then route it."""
        head = stream.receivedSoFar()
        if len(head) < len(HEARTBEAT_TYPE) and not stream.peerEnded:
            return
        self._sniffing.discard(stream)
        stream.release()
        isHeartbeat = head.startswith(HEARTBEAT_TYPE) and self.config.answerHeartbeats
        if isHeartbeat or (self.streamFactories and len(head) >= len(HEARTBEAT_TYPE)):
            stream.streamType = _u32.unpack(head[:4])[0]
            stream.consumeReceived(len(HEARTBEAT_TYPE))
        if isHeartbeat:
            stream.attach(HeartbeatResponder())
        else:
            self._attachIncoming(stream)
        self.flush()

    def _attachIncoming(self, stream):
        factory = self.streamFactories.get(stream.streamType, self.streamFactory)
        if factory is not None:
            if self._peerAddress is None:
                self._peerAddress = self.transport.getPeer()
            protocol = factory.buildProtocol(self._peerAddress)
            if protocol is None:
                self._refuse(stream, ErrorCode.STREAM_REFUSED)
                return
            stream.attach(protocol)
        elif self._acceptWaiters:
            d, protocol = self._acceptWaiters.pop(0)
            stream.attach(protocol)
            d.callback(protocol)
        elif len(self._acceptQueue) < self.config.acceptBacklog:
            self._acceptQueue.append(stream)
        else:
            self._refuse(stream, ErrorCode.ACCEPT_QUEUE_FULL)

    def _refuse(self, stream, code):
        self._metrics.refused(code)
        self._conn.resetStream(stream.streamId, code)
        stream.streamLost(Failure(StreamRefused(code, retryable=True)))

    def _goAwayReceived(self, event):
        self._metrics.goAwaysReceived.inc()
        self.log.info("muxado: {peer} sent GOAWAY ({code}, {debug!r}); "
                      "{n} of our streams refused", peer=self._peer(),
                      code=codeName(event.code), debug=event.debug, n=len(event.refused))
        for streamId in event.refused:
            stream = self._streams.get(streamId)
            if stream is not None:
                stream.streamLost(Failure(StreamRefused(
                    ErrorCode.REMOTE_GONE_AWAY, retryable=True,
                    message="the peer sent GOAWAY before it saw stream %d" % (streamId,))))

    def _onHeartbeat(self, rtt, timedOut):
        callback = self.config.onHeartbeat
        if callback is not None:
            callback(rtt, timedOut)
        if not timedOut:
            return
        self._metrics.heartbeatTimeouts.inc()
        # Not when the session is closing already (a GOAWAY, sent or
        # received, can end the heartbeat stream on its way out).
        if self.config.closeOnHeartbeatTimeout and self.transport is not None \
                and self._closeReason is None and not self._closing:
            self.log.warn("muxado: no heartbeat echo from {peer} within {seconds:g} s; "
                          "closing the session", peer=self._peer(),
                          seconds=self._heartbeat.interval + self._heartbeat.tolerance)
            self._localCode = ErrorCode.HEARTBEAT_TIMEOUT
            self._closing = True
            self._conn.goAway(ErrorCode.INTERNAL_ERROR, b"heartbeat timeout")
            if self._conn.hasDataToSend():
                self.transport.writeSequence(self._conn.dataToSend())
            self.transport.unregisterProducer()
            self.transport.abortConnection()

    def _clock(self):
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    def _runSoon(self):
        pending, self._soon = self._soon, []
        for f, args in pending:
            f(*args)

    def _callLater(self, delay, f, *args):
        return self._clock().callLater(delay, f, *args)

    def _peer(self):
        try:
            return self.transport.getPeer()
        except Exception:
            return None


def _urgency(stream):
    return -stream.priority
