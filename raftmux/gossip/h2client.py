# -*- test-case-name: raftmux.test.test_gossip -*-
"""
An HTTP/2 client for Twisted on the sans-IO ``h2`` library (Agent and treq
speak only HTTP/1.1): prior knowledge over TCP, ALPN ``h2`` over TLS.

``H2ClientProtocol`` runs many concurrent streams on one connection,
queueing requests beyond the peer's MAX_CONCURRENT_STREAMS, with flow
control both ways (see ``h2base``).  ``H2ClientPool`` keeps one connection
per peer address, shares it, and dials a new one after GOAWAY or loss.
"""

from collections import deque

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import ResponseReceived
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.gossip.errors import ConnectionGoneAway, NotHTTP2, StreamReset
from raftmux.gossip.framing import DEFAULT_MAX_FRAME_SIZE
from raftmux.gossip.h2base import H2Base
from raftmux.gossip.h2server import CONTENT_TYPE
from raftmux.gossip.stream import GossipStream


def parseAddress(address):
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError("address %r is not host:port" % (address,))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Request:
    """One request/response exchange; the Deferred fires with the status."""

    def __init__(self, client, streamID, deferred):
        self.client = client
        self.streamID = streamID
        self.deferred = deferred

    def responseReceived(self, status):
        d, self.deferred = self.deferred, None
        if d is not None:
            d.callback(status)

    def dataReceived(self, data, flowLength):
        self.client.acknowledge(self.streamID, flowLength)

    def ended(self):
        if self.deferred is None:  # the usual case: answered, then END_STREAM
            self.client.forget(self.streamID)
            self.client.streamFinished(self.streamID)
            return
        self._done(Failure(ConnectionGoneAway("stream ended without a response")))

    def reset(self, code):
        self._done(Failure(StreamReset(code)))

    def lost(self, reason):
        if reason is not None and reason.check(ConnectionGoneAway):
            return self._done(reason)
        self._done(Failure(ConnectionGoneAway(
            "connection lost: %s" % (reason.getErrorMessage() if reason else "?",))))

    def writable(self, flag):
        pass

    def _done(self, reason):
        self.client.forget(self.streamID)
        self.client.streamFinished(self.streamID)
        d, self.deferred = self.deferred, None
        if d is not None:
            d.errback(reason)


@implementer(IHandshakeListener)
class H2ClientProtocol(H2Base):
    def __init__(self, clock, authority, scheme=b"http", maxFrameSize=DEFAULT_MAX_FRAME_SIZE,
                 **kwargs):
        H2Base.__init__(self, clock, H2Configuration(client_side=True, header_encoding=None,
                                              validate_outbound_headers=False,
                                              normalize_outbound_headers=False),
                        **kwargs)
        self.authority = authority.encode("ascii") if isinstance(authority, str) else authority
        self.scheme = scheme
        self.maxFrameSize = maxFrameSize
        self._waiting = deque()
        self.goingAway = False
        self.whenLost = defer.Deferred()
        self.onLost = None

    def handshakeCompleted(self):
        if self.transport.negotiatedProtocol != b"h2":
            self._lostReason = Failure(NotHTTP2(
                "ALPN chose %r, not h2" % (self.transport.negotiatedProtocol,)))
            self.transport.abortConnection()

    @property
    def usable(self):
        return not (self.closed or self.goingAway)

    # -- requests ---------------------------------------------------------

    def _headers(self, path, length=None):
        headers = [(b":method", b"POST"), (b":scheme", self.scheme),
                   (b":authority", self.authority), (b":path", path),
                   (b"content-type", CONTENT_TYPE)]
        if length is not None:
            headers.append((b"content-length", b"%d" % (length,)))
        return headers

    def request(self, path, body, timeout=None):
        """POST ``body`` to ``path``; fires with the response status."""
        def cancel(d):
            streamID = holder[0]
            if streamID is None:
                self._unqueue(start)
            else:
                self.forget(streamID)
                self.resetStream(streamID, ErrorCodes.CANCEL)
                self.streamFinished(streamID)

        holder = [None]
        d = defer.Deferred(cancel)

        def start():
            streamID = holder[0] = self.conn.get_next_available_stream_id()
            self.handlers[streamID] = _Request(self, streamID, d)
            self.conn.send_headers(streamID, self._headers(path, len(body)), end_stream=not body)
            if body:
                self.sendData(streamID, body, end=True)
            else:
                self.flush()
        self._submit(start, d)
        if timeout:
            d.addTimeout(timeout, self.clock)
        return d

    def openStream(self, path, timeout=None):
        """POST with an open body; fires with a ``GossipStream`` once 200 arrives."""
        holder = [None]

        def cancel(d):
            if holder[0] is None:
                self._unqueue(start)
            else:
                holder[0].cancelResponse()  # so d fails with CancelledError

        d = defer.Deferred(cancel)

        def answered(stream, failure):
            if failure is None:
                d.callback(stream)
            else:
                d.errback(failure)

        def start():
            streamID = self.conn.get_next_available_stream_id()
            stream = holder[0] = GossipStream(self, streamID, self.maxFrameSize, self.metrics,
                                              onResponse=answered)
            self.handlers[streamID] = stream
            self.conn.send_headers(streamID, self._headers(path))
            self.flush()
        self._submit(start, d)
        if timeout:
            d.addTimeout(timeout, self.clock)
        return d

    metrics = None

    def _submit(self, start, d):
        if not self.usable:
            d.errback(ConnectionGoneAway("connection is closing", retryable=True))
        elif self._hasSlot():
            start()
        else:
            self._waiting.append((start, d))

    def _unqueue(self, start):
        self._waiting = deque(w for w in self._waiting if w[0] is not start)

    def _hasSlot(self):
        return self.conn.open_outbound_streams < self.conn.remote_settings.max_concurrent_streams

    def streamFinished(self, streamID):
        while self._waiting and self._hasSlot() and self.usable:
            self._waiting.popleft()[0]()
        if self.goingAway and not self.handlers and not self.closed:
            self._abort()

    # -- events -------------------------------------------------------------

    def otherEvent(self, event):
        if isinstance(event, ResponseReceived):
            handler = self.handlers.get(event.stream_id)
            status = int(dict(event.headers).get(b":status", b"0"))
            if handler is not None:
                handler.responseReceived(status)

    def goneAway(self, event):
        """GOAWAY: fail what the peer did not take (retryable) and close."""
        self.goingAway = True
        for streamID, handler in list(self.handlers.items()):
            if streamID > event.last_stream_id:
                self.handlers.pop(streamID, None)
                handler.lost(Failure(ConnectionGoneAway("GOAWAY", retryable=True)))
        self._abort()

    def connectionLost(self, reason=None):
        self.goingAway = True
        waiting, self._waiting = self._waiting, deque()
        reason = getattr(self, "_lostReason", None) or reason or Failure(ConnectionDone())
        H2Base.connectionLost(self, reason)
        for _, d in waiting:
            d.errback(ConnectionGoneAway("connection lost before the request started",
                                         retryable=True))
        if self.onLost is not None:
            self.onLost(self)
        self.whenLost.callback(None)


class _ClientFactory(Factory):
    noisy = False

    def __init__(self, pool, address):
        self.pool = pool
        self.address = address

    def buildProtocol(self, addr):
        proto = H2ClientProtocol(self.pool.reactor, self.address,
                                 scheme=b"https" if self.pool.contextFactory else b"http",
                                 **self.pool.protocolOptions)
        proto.metrics = self.pool.metrics
        proto.factory = self
        return proto


class H2ClientPool:
    """
    One HTTP/2 connection per peer ``host:port``, dialled on first use and
    again after it closes or goes away.  ``contextFactory`` (an
    ``IOpenSSLClientConnectionCreator``, or a callable taking the host and
    returning one) switches to TLS; it should offer ALPN ``h2``.
    """

    def __init__(self, reactor, contextFactory=None, connectTimeout=5, endpointFactory=None,
                 metrics=None, **protocolOptions):
        self.reactor = reactor
        self.contextFactory = contextFactory
        self.connectTimeout = connectTimeout
        self.endpointFactory = endpointFactory or self._endpoint
        self.metrics = metrics
        self.protocolOptions = protocolOptions
        self._connections = {}
        self._connecting = {}
        self._dials = {}

    def _endpoint(self, address):
        host, port = parseAddress(address)
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.connectTimeout)
        if self.contextFactory is not None:
            creator = self.contextFactory
            if not hasattr(creator, "clientConnectionForTLS"):
                creator = creator(host)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint

    def connectionFor(self, address):
        """A Deferred firing with the (shared) ``H2ClientProtocol`` for ``address``."""
        proto = self._connections.get(address)
        if proto is not None and proto.usable:
            return defer.succeed(proto)
        waiters = self._connecting.get(address)
        d = defer.Deferred(lambda d: waiters.remove(d) if d in waiters else None)
        if waiters is not None:
            waiters.append(d)
            return d
        waiters = self._connecting[address] = [d]
        try:
            connecting = self.endpointFactory(address).connect(_ClientFactory(self, address))
        except Exception:
            del self._connecting[address]
            return defer.fail()

        def connected(proto):
            self._connections[address] = proto
            proto.onLost = lambda p: (self._connections.get(address) is p
                                      and self._connections.pop(address))
            for w in self._connecting.pop(address, []):
                w.callback(proto)

        def failed(f):
            for w in self._connecting.pop(address, []):
                w.errback(f)
        self._dials[address] = connecting
        connecting.addBoth(lambda r: (self._dials.pop(address, None), r)[1])
        connecting.addCallbacks(connected, failed)
        return d

    def request(self, address, path, body, timeout=None):
        d = self.connectionFor(address)
        d.addCallback(lambda proto: proto.request(path, body))
        if timeout:
            d.addTimeout(timeout, self.reactor)
        return d

    def openStream(self, address, path, timeout=None):
        d = self.connectionFor(address)
        d.addCallback(lambda proto: proto.openStream(path))
        if timeout:
            d.addTimeout(timeout, self.reactor)
        return d

    def closeAll(self):
        """GOAWAY and close every connection; fires when all are gone."""
        for dial in list(self._dials.values()):
            dial.cancel()
        waits = []
        for proto in list(self._connections.values()):
            waits.append(proto.whenLost)
            if not proto.closed:
                proto.goAway()
        self._connections.clear()
        return defer.DeferredList(waits, consumeErrors=True)
