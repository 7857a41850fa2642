# -*- test-case-name: raftmux.test.test_rafthttp_client -*-
"""
rafthttp streams (spec 2): data flows from the server to the dialler only.

* ``StreamWriter``: the server side, one per peer and stream type.  A GET
  ``/raft/stream/<type>/<id>`` is ``attach``ed (the newest connection wins);
  queued messages are encoded and written in batches, with a link
  heartbeat every 5/3 s.  It is the response's push producer: while the
  peer does not read, messages wait in a bounded queue, and a connection
  stalled for 5 s is aborted.
* ``StreamReader``: the client side.  It dials the peer's stream endpoint
  through an Agent, feeds the body to the sans-IO decoder, hands messages
  to the peer's inboxes, drops a stream silent for 5 s and redials at most
  every 100 ms.
"""

from collections import deque
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from zope.interface import implementer

from raftmux.httpbody import discardBody, readBody
from raftmux.rafthttp.codec import (
    LINK_HEARTBEAT,
    MSGAPPV2_LINK_HEARTBEAT,
    CodecError,
    MessageDecoder,
    MsgAppV2Decoder,
    MsgAppV2Encoder,
    encodeMessage,
)
from raftmux.rafthttp.headers import (
    ERROR_BODY_LIMIT,
    MalformedVersion,
    requestHeaders,
    supportsStreams,
)
from raftmux.raftpb import MsgHeartbeat, MsgProp

__all__ = ["StreamWriter", "StreamReader", "STREAM_BUF_SIZE", "MESSAGE", "MSGAPP"]

MESSAGE = "message"
MSGAPP = "msgapp"
_NAMES = {MESSAGE: "stream Message", MSGAPP: "stream MsgApp v2"}

# streamBufSize, ConnReadTimeout / ConnWriteTimeout.
STREAM_BUF_SIZE = 4096
CONN_TIMEOUT = 5.0
HEARTBEAT_INTERVAL = CONN_TIMEOUT / 3
DIAL_RETRY_INTERVAL = 0.1


@implementer(IPushProducer)
class _OutgoingConnection:
    """One attached GET response; the writer's producer for its transport."""

    def __init__(self, writer, request):
        self.writer = writer
        self.request = request
        self.paused = False
        self.closed = False
        self.stall = None

    def pauseProducing(self):
        if not self.paused:
            self.paused = True
            self.stall = self.writer.clock.callLater(CONN_TIMEOUT, self.writer.connectionStalled, self)

    def resumeProducing(self):
        if self.paused:
            self.paused = False
            if self.stall is not None and self.stall.active():
                self.stall.cancel()
            self.stall = None
            self.writer.resumeWriting()

    def stopProducing(self):
        pass


class StreamWriter:
    """
    The server side of one stream type for one peer.  ``send(message)``
    returns False when the writer is not working or its queue is full.
    """

    log = Logger()

    def __init__(self, peer, kind, queueSize=STREAM_BUF_SIZE):
        self.peer = peer
        self.kind = kind
        self.clock = peer.transport.reactor
        self.queueSize = queueSize
        self._queue: deque[Any] = deque()
        self._conn = None
        self._flush = None
        self._beat = None
        self._encode = None

    @property
    def working(self):
        return self._conn is not None

    @property
    def queued(self):
        """Messages waiting to be written (at most ``queueSize``)."""
        return len(self._queue)

    def attach(self, request):
        """Take over a stream GET's response: newest connection wins."""
        if self._conn is not None:
            self.log.info("closing older {name} to {peer:x} (a new one arrived)",
                          name=_NAMES[self.kind], peer=self.peer.id)
            self._close(finish=True)
        request.defaultContentType = None
        request.setResponseCode(200)
        request.write(b"")
        conn = _OutgoingConnection(self, request)
        request.registerProducer(conn, True)
        request.notifyFinish().addBoth(self._lost, conn)
        self._conn = conn
        if self.kind == MSGAPP:
            self._encode = MsgAppV2Encoder().encode
            self._heartbeat = MSGAPPV2_LINK_HEARTBEAT
        else:
            self._encode = encodeMessage
            self._heartbeat = LINK_HEARTBEAT
        self.peer.status.activate()
        self._beat = self.clock.callLater(HEARTBEAT_INTERVAL, self._sendHeartbeat)
        self.log.info("established {name} with {peer:x} (writer)",
                      name=_NAMES[self.kind], peer=self.peer.id)

    def send(self, message):
        if self._conn is None or len(self._queue) >= self.queueSize:
            return False
        self._queue.append(message)
        if self._flush is None and not self._conn.paused:
            self._flush = self.clock.callLater(0, self._write)
        return True

    def resumeWriting(self):
        """The connection's transport wants data again: flush what waits."""
        if self._flush is None and self._queue and self._conn is not None:
            self._flush = self.clock.callLater(0, self._write)

    def _write(self):
        self._flush = None
        conn = self._conn
        if conn is None or conn.paused:
            return
        queue = self._queue
        encode = self._encode
        parts = []
        n = min(len(queue), STREAM_BUF_SIZE // 2)
        for _ in range(n):
            message = queue.popleft()
            try:
                parts.append(encode(message))
            except ValueError as e:
                self.log.warn("cannot send message on {name}: {error}",
                              name=_NAMES[self.kind], error=e)
                self.peer.transport.raft.reportUnreachable(message.to)
        data = b"".join(parts)
        self.peer.metrics.sentBytes.inc(len(data))
        conn.request.write(data)
        if queue and not conn.paused and self._conn is conn:
            self._flush = self.clock.callLater(0, self._write)

    def _sendHeartbeat(self):
        self._beat = None
        conn = self._conn
        if conn is None:
            return
        if not conn.paused:
            conn.request.write(self._heartbeat)
        self._beat = self.clock.callLater(HEARTBEAT_INTERVAL, self._sendHeartbeat)

    def connectionStalled(self, conn):
        conn.stall = None
        if conn is self._conn and conn.paused:
            self.log.warn("{name} to {peer:x} stalled for {t} s; closing it",
                          name=_NAMES[self.kind], peer=self.peer.id, t=CONN_TIMEOUT)
            self.peer.status.deactivate("failed to write on %s (stalled)" % (_NAMES[self.kind],))
            self._close(finish=False)

    def _lost(self, result, conn):
        conn.closed = True
        if conn is self._conn:
            self.log.info("lost {name} to {peer:x}", name=_NAMES[self.kind], peer=self.peer.id)
            self.peer.status.deactivate("failed to write on %s (connection lost)"
                                        % (_NAMES[self.kind],))
            self._close(finish=False)
        return None

    def _close(self, finish):
        """Let go of the current connection; a clean end when ``finish``."""
        conn, self._conn = self._conn, None
        for call in (self._flush, self._beat, conn.stall):
            if call is not None and call.active():
                call.cancel()
        self._flush = self._beat = conn.stall = None
        if self._queue:
            self._queue.clear()
            self.peer.transport.raft.reportUnreachable(self.peer.id)
        if conn.closed:
            return
        conn.closed = True
        request = conn.request
        request.unregisterProducer()
        if finish:
            request.finish()
        else:
            transport = getattr(request.channel, "transport", None)
            if transport is not None and hasattr(transport, "abortConnection"):
                transport.abortConnection()
            else:
                request.loseConnection()

    def stop(self):
        if self._conn is not None:
            self._close(finish=True)


class _StreamBody(Protocol):
    """Feeds a stream response body to the decoder."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, reader, decoder):
        self.reader = reader
        self.decoder = decoder
        self.error = None
        self.closing = False

    def dataReceived(self, data):
        reader = self.reader
        reader.lastRead = reader.clock.seconds()
        reader.peer.metrics.receivedBytes.inc(len(data))
        if self.error is not None:
            return
        try:
            messages = self.decoder.receiveData(data)
        except CodecError as e:
            self.error = e
            reader.log.warn("failed to read {name} from {peer:x}: {error}",
                            name=_NAMES[reader.kind], peer=reader.peer.id, error=e)
            self.transport.stopProducing()
            return
        if reader.peer.paused:
            return
        recv = reader.peer.recv
        prop = reader.peer.prop
        for m in messages:
            t = m.type
            if t == MsgHeartbeat and m.to == 0 and getattr(m, "from") == 0:
                continue
            if not (prop if t == MsgProp else recv).put(m):
                reader.peer.metrics.droppedIn.inc()
                reader.log.warn("dropped incoming message type {type} from {peer:x}: "
                                "receive buffer full", type=t, peer=reader.peer.id)

    def connectionLost(self, reason=connectionDone):
        error = self.error
        if error is None and reason.check(ResponseDone, PotentialDataLoss):
            try:
                self.decoder.endOfStream()
            except CodecError as e:
                error = e
        elif error is None and not self.closing:
            error = reason.value
        self.reader.bodyEnded(self, error)


class StreamReader:
    """
    The client side of one stream type for one peer: dial, read, redial.
    The Agent is the Transport's (persistent pool, or HTTP over muxado).
    """

    log = Logger()

    def __init__(self, peer, kind, retryInterval=DIAL_RETRY_INTERVAL, idleTimeout=CONN_TIMEOUT):
        self.peer = peer
        self.kind = kind
        self.clock = peer.transport.reactor
        self.retryInterval = retryInterval
        self.idleTimeout = idleTimeout
        self.lastRead = 0.0
        self._lastDial = None
        self._stopped = True
        self._dialing = None
        self._redial = None
        self._idle = None
        self._body = None
        self._unsupportedLogged = False

    @property
    def connected(self):
        return self._body is not None

    def start(self):
        self._stopped = False
        self._dial()

    def stop(self):
        self._stopped = True
        if self._redial is not None and self._redial.active():
            self._redial.cancel()
        self._redial = None
        if self._dialing is not None:
            self._dialing.cancel()
        if self._body is not None:
            self._body.closing = True
            self._body.transport.stopProducing()

    def _dial(self):
        self._redial = None
        if self._stopped:
            return
        peer = self.peer
        transport = peer.transport
        self._lastDial = self.clock.seconds()
        url = peer.picker.pick()
        target = "%s/raft/stream/%s/%x" % (url, self.kind, transport.id)
        headers = requestHeaders(transport.id, transport.clusterID, transport.urls, to=peer.id)
        d = self._dialing = transport.agent.request(b"GET", target.encode(), Headers(headers))
        d.addCallbacks(self._response, self._dialFailed, callbackArgs=(url,),
                       errbackArgs=(url,))
        d.addErrback(lambda f: self.log.failure("stream reader bug", f))

    def _scheduleRedial(self):
        if self._stopped or self._redial is not None:
            return
        delay = max(0.0, self._lastDial + self.retryInterval - self.clock.seconds())
        self._redial = self.clock.callLater(delay, self._dial)

    def _dialFailed(self, failure, url):
        self._dialing = None
        if failure.check(CancelledError) and self._stopped:
            return
        self._failed(url, "dial failed: %s" % (failure.getErrorMessage(),))

    def _failed(self, url, reason, deactivate=True):
        peer = self.peer
        peer.picker.unreachable(url)
        if deactivate:
            peer.status.deactivate("failed to dial %x on %s (%s)"
                                   % (peer.id, _NAMES[self.kind], reason))
        self._scheduleRedial()

    def _response(self, response, url):
        self._dialing = None
        if self._stopped:
            response.deliverBody(_Closer())
            return
        try:
            supported = supportsStreams(
                (response.headers.getRawHeaders(b"X-Server-Version") or [None])[0])
        except MalformedVersion as e:
            self.log.warn("bad X-Server-Version from {peer:x}: {error}",
                          peer=self.peer.id, error=e)
            response.deliverBody(_Closer())
            return self._failed(url, str(e))
        if not supported:
            if not self._unsupportedLogged:
                self._unsupportedLogged = True
                self.log.warn("peer {peer:x} does not support {name} (no X-Server-Version)",
                              peer=self.peer.id, name=_NAMES[self.kind])
            discardBody(response)
            return self._failed(url, "unsupported stream type", deactivate=False)
        code = response.code
        if code == 200:
            return self._connected(response)
        if code == 412:
            d = readBody(response, ERROR_BODY_LIMIT)
            d.addBoth(lambda text: self._failed(
                url, "412 %s" % (text.decode("latin-1").rstrip("\n")
                                 if isinstance(text, bytes) else "?",)))
            return d
        discardBody(response)
        if code == 410:
            self.log.error("the member has been permanently removed from the cluster "
                           "(stream dial to {peer:x})", peer=self.peer.id)
            self.peer.transport.noticeRemoved(self.peer.id)
        elif code == 404:
            reason = "peer %x failed to find local node %x" % (self.peer.id,
                                                                self.peer.transport.id)
            return self._failed(url, reason)
        return self._failed(url, "unhandled http status %d" % (code,))

    def _connected(self, response):
        peer = self.peer
        transport = peer.transport
        decoder: Any
        if self.kind == MSGAPP:
            decoder = MsgAppV2Decoder(transport.id, peer.id, transport.maxMessageSize)
        else:
            decoder = MessageDecoder(transport.maxMessageSize)
        self._unsupportedLogged = False
        peer.status.activate()
        self.lastRead = self.clock.seconds()
        self._body = _StreamBody(self, decoder)
        response.deliverBody(self._body)
        self._idle = self.clock.callLater(self.idleTimeout, self._checkIdle)
        self.log.info("established {name} with {peer:x} (reader)",
                      name=_NAMES[self.kind], peer=peer.id)

    def _checkIdle(self):
        self._idle = None
        body = self._body
        if body is None:
            return
        silent = self.clock.seconds() - self.lastRead
        if silent >= self.idleTimeout:
            self.log.warn("{name} from {peer:x} silent for {t:.1f} s; dropping it",
                          name=_NAMES[self.kind], peer=self.peer.id, t=silent)
            body.error = TimeoutError("no data for %.1f s" % (silent,))
            body.transport.stopProducing()
        else:
            self._idle = self.clock.callLater(self.idleTimeout - silent, self._checkIdle)

    def bodyEnded(self, body, error):
        if body is not self._body:
            return
        self._body = None
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        if error is not None and not body.closing:
            self.peer.metrics.receivedFailures.inc()
            self.peer.status.deactivate("failed to read %x on %s (%s)"
                                        % (self.peer.id, _NAMES[self.kind], error))
        else:
            self.log.info("{name} from {peer:x} ended", name=_NAMES[self.kind],
                          peer=self.peer.id)
        self._scheduleRedial()


class _Closer(Protocol):
    """Drop a response we do not want, closing its connection."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def connectionMade(self):
        self.transport.stopProducing()
