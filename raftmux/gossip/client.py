# -*- test-case-name: raftmux.test.test_gossip -*-
"""
The dialing side of ckit's gossiphttp on the HTTP/2 shell's connection
pool: POSTs of framed packets to ``/message``, and ``/stream`` dials.  One
connection per peer ``host:port`` carries both, as Go's client does (so
packets arrive in the order they were sent); beyond the peer's
MAX_CONCURRENT_STREAMS requests wait in the pool.  h2c with prior
knowledge, or TLS with ALPN ``h2`` when a context factory is given.
"""

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from raftmux.gossip.framing import DEFAULT_MAX_FRAME_SIZE
from raftmux.gossip.server import CONTENT_TYPE
from raftmux.gossip.stream import GossipStream
from raftmux.h2 import H2Config, H2ConnectionPool, IH2StreamHandler, Origin, statusOf

__all__ = ["GossipClient", "parseAddress"]

#: the client's connections: keepalive finds dead peers, idle ones are closed;
#: answers are read for their ``:status`` only, so h2 need not check them
CLIENT_CONFIG = H2Config(pingInterval=30.0, pingTimeout=10.0, idleTimeout=300.0,
                         validateInboundHeaders=False)


def parseAddress(address):
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError("address %r is not host:port" % (address,))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


@implementer(IH2StreamHandler, IHalfCloseableProtocol)
class _Post(Protocol):
    """One POST: sends ``body``; ``deferred`` fires with the status once the answer is complete."""

    def __init__(self, body):
        self.body = body
        self.deferred = defer.Deferred(self._cancel)
        self.status = None

    def connectionMade(self):
        if self.body:
            self.transport.writeFinal(self.body)

    def _cancel(self, d):
        self.deferred = None
        if self.transport is not None and not self.transport.disconnected:
            self.transport.reset()

    def headersReceived(self, headers):
        self.status = statusOf(headers)

    def trailersReceived(self, headers):
        pass

    def readConnectionLost(self):
        self._fire(self.status)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        if self.status is not None:
            self._fire(self.status)  # answered; a reset after the answer is fine
        else:
            self._fail(reason)

    def _fire(self, status):
        d, self.deferred = self.deferred, None
        if d is not None and not d.called:
            d.callback(status)

    def _fail(self, reason):
        d, self.deferred = self.deferred, None
        if d is not None and not d.called:
            d.errback(reason)


def _cancelOpening(failure, opening):
    if not opening.called:
        opening.cancel()
    return failure


class GossipClient:
    """
    @param contextFactory: None for h2c; an ``IOpenSSLClientConnectionCreator``
        (or a callable taking the host and returning one) offering ALPN ``h2``.
    @param endpointFactory: ``callable(address) -> IStreamClientEndpoint``
        replacing TCP/TLS dialling (tests).
    """

    def __init__(self, reactor, contextFactory=None, connectTimeout=5, endpointFactory=None,
                 metrics=None, maxFrameSize=DEFAULT_MAX_FRAME_SIZE, config=None):
        self.reactor = reactor
        self.contextFactory = contextFactory
        self.connectTimeout = connectTimeout
        self.metrics = metrics
        self.maxFrameSize = maxFrameSize
        self.scheme = b"https" if contextFactory is not None else b"http"
        self._endpointFactory = endpointFactory
        self._origins = {}
        self._addresses = {}
        self._baseHeaders = {}
        self.pool = H2ConnectionPool(reactor, config if config is not None else CLIENT_CONFIG,
                                     connectTimeout=connectTimeout,
                                     maxConnectionsPerOrigin=1,
                                     endpointFactory=self._endpoint)

    def originFor(self, address):
        origin = self._origins.get(address)
        if origin is None:
            host, port = parseAddress(address)
            origin = self._origins[address] = Origin(self.scheme, host.encode("idna"), port)
            self._addresses[origin] = address
        return origin

    def _endpoint(self, origin):
        address = self._addresses[origin]
        if self._endpointFactory is not None:
            return self._endpointFactory(address)
        host, port = parseAddress(address)
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.connectTimeout)
        if self.contextFactory is not None:
            creator = self.contextFactory
            if not hasattr(creator, "clientConnectionForTLS"):
                creator = creator(host)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint

    def _headers(self, address, path, length=None):
        key = (address, path)
        base = self._baseHeaders.get(key)
        if base is None:
            base = self._baseHeaders[key] = (
                (b":method", b"POST"), (b":scheme", self.scheme),
                (b":authority", address.encode("ascii")), (b":path", path),
                (b"content-type", CONTENT_TYPE))
        headers = list(base)
        if length is not None:
            headers.append((b"content-length", b"%d" % (length,)))
        return headers

    def connectionFor(self, address):
        """A Deferred firing with an ``H2ClientProtocol`` to ``address`` (for tests)."""
        return self.pool.connectionFor(self.originFor(address))

    def request(self, address, path, body, timeout=None):
        """POST ``body`` to ``path``; fires with the response status."""
        try:
            origin = self.originFor(address)
        except ValueError:
            return defer.fail()
        handler = _Post(body)
        d = handler.deferred
        opening = self.pool.openStream(origin, self._headers(address, path, len(body)),
                                       handler, endStream=not body)
        opening.addErrback(handler._fail)
        if not opening.called:
            # Waiting for a connection or a slot: cancelling takes it out of the queue.
            d.addErrback(_cancelOpening, opening)
        if timeout:
            d.addTimeout(timeout, self.reactor)
        return d

    def openStream(self, address, path, timeout=None):
        """POST with an open body; fires with a ``GossipStream`` once 200 arrives."""
        try:
            origin = self.originFor(address)
        except ValueError:
            return defer.fail()
        holder = []

        def cancel(_):
            opening.cancel()
            if holder:
                holder[0].cancelResponse()

        d = defer.Deferred(cancel)

        def answered(stream, failure):
            if failure is None:
                d.callback(stream)
            else:
                d.errback(failure)

        def build(connection, streamId):
            stream = GossipStream(connection, streamId, self.maxFrameSize, self.metrics,
                                  onResponse=answered)
            holder.append(stream)
            return stream

        opening = self.pool.openStream(origin, self._headers(address, path), None,
                                       buildStream=build)
        opening.addErrback(lambda f: None if d.called else d.errback(f))
        if timeout:
            d.addTimeout(timeout, self.reactor)
        return d

    def closeAll(self):
        """GOAWAY and close every connection; fires when all are gone."""
        return self.pool.closeCachedConnections()
