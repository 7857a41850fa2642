# -*- test-case-name: raftmux.test.test_h2_pool -*-
"""
``H2ConnectionPool``: client connections by origin.  One connection
carries many concurrent streams; when every connection to an origin has
as many streams open as the server's SETTINGS_MAX_CONCURRENT_STREAMS
allows, the pool dials another (up to ``maxConnectionsPerOrigin``), and
beyond that requests wait in the pool's queue for a free slot.  One dial
per origin is in progress at a time; connections that go away (GOAWAY,
loss, idle timeout) are dropped and the next request dials again.

``https`` origins are dialled over TLS offering ALPN ``h2`` and
``http/1.1``; a server that does not choose ``h2`` fails the dial (and the
requests waiting for it) with ``NotHTTP2``, which ``H2Agent`` takes as "use
HTTP/1.1 for this origin".
"""

from collections import deque, namedtuple

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.h2.client import H2ClientProtocol
from raftmux.h2.config import H2Config
from raftmux.h2.interfaces import IH2ConnectionListener

__all__ = ["ALPN_PROTOCOLS", "H2ConnectionPool", "Origin", "withALPN"]

#: what a client offers by ALPN: h2 first, HTTP/1.1 as the fallback
ALPN_PROTOCOLS = (b"h2", b"http/1.1")


class Origin(namedtuple("Origin", ["scheme", "host", "port"])):
    """
    ``(scheme, host, port)``: bytes, bytes, int.  ``authority`` is the
    ``:authority`` of requests to it (the port only when not the default).
    """

    __slots__ = ()

    @classmethod
    def fromURI(cls, uri):
        """From a ``twisted.web.client.URI``."""
        return cls(uri.scheme, uri.host, uri.port)

    @property
    def authority(self):
        host = self.host
        if b":" in host and not host.startswith(b"["):
            host = b"[" + host + b"]"
        default = 443 if self.scheme == b"https" else 80
        if self.port == default:
            return host
        return b"%s:%d" % (host, self.port)

    @property
    def secure(self):
        return self.scheme == b"https"


@implementer(IOpenSSLClientConnectionCreator)
class _ALPNCreator:
    """A client connection creator that offers ``protocols`` by ALPN on top of another."""

    def __init__(self, creator, protocols):
        self._creator = creator
        self._protocols = list(protocols)

    def clientConnectionForTLS(self, tlsProtocol):
        connection = self._creator.clientConnectionForTLS(tlsProtocol)
        connection.set_alpn_protos(self._protocols)
        return connection


def withALPN(creator, protocols=ALPN_PROTOCOLS):
    """
    ``creator`` (an ``IOpenSSLClientConnectionCreator``, such as an
    ``IPolicyForHTTPS``'s ``creatorForNetloc`` answer, which offers no
    ALPN) offering ``protocols`` by ALPN; its certificate checks stay.
    """
    return _ALPNCreator(creator, protocols)


class _Pending:
    """One ``openStream`` waiting in the pool."""

    __slots__ = ("headers", "handler", "endStream", "buildStream", "deferred")

    def __init__(self, headers, handler, endStream, buildStream):
        self.headers = headers
        self.handler = handler
        self.endStream = endStream
        self.buildStream = buildStream
        self.deferred = None


class _ConnectionFactory(Factory):
    noisy = False

    def __init__(self, pool, origin):
        self.pool = pool
        self.origin = origin

    def buildProtocol(self, addr):
        return self.pool.buildConnection(self.origin)


class _Dial:
    __slots__ = ("connecting", "proto", "timedOut")

    def __init__(self):
        self.connecting = None
        self.proto = None
        self.timedOut = False


class _OriginState:
    __slots__ = ("connections", "pending", "dialing", "waiters")

    def __init__(self):
        self.connections = []
        self.pending = deque()
        self.dialing = None
        self.waiters = []


@implementer(IH2ConnectionListener)
class H2ConnectionPool:
    """
    @param reactor: ``IReactorTCP`` + ``IReactorTime`` (and the clock).
    @param config: the ``H2Config`` of every connection.
    @param tlsPolicy: an ``IPolicyForHTTPS`` for ``https`` origins
        (default: ``BrowserLikePolicyForHTTPS()``, the platform's trust
        store); its creators' checks are kept and ALPN is added.
    @param connectTimeout: seconds for TCP connect and TLS handshake.
    @param maxConnectionsPerOrigin: connections to one origin at most.
    @param endpointFactory: ``callable(origin) -> IStreamClientEndpoint``
        replacing the pool's own TCP/TLS dialling (tests, or TLS set up by
        the caller; such an endpoint must negotiate h2 itself).
    """

    log = Logger()

    def __init__(self, reactor, config=None, tlsPolicy=None, connectTimeout=30.0,
                 maxConnectionsPerOrigin=4, endpointFactory=None):
        self.reactor = reactor
        self.config = config if config is not None else H2Config()
        self._tlsPolicy = tlsPolicy
        self.connectTimeout = connectTimeout
        self.maxConnectionsPerOrigin = max(1, maxConnectionsPerOrigin)
        self._endpointFactory = endpointFactory
        self._origins = {}
        self._originOf = {}
        self._closing = False

    # -- dialling -------------------------------------------------------------------

    @property
    def tlsPolicy(self):
        if self._tlsPolicy is None:
            from twisted.web.client import BrowserLikePolicyForHTTPS
            self._tlsPolicy = BrowserLikePolicyForHTTPS()
        return self._tlsPolicy

    def endpointFor(self, origin):
        """The endpoint a new connection to ``origin`` is dialled through."""
        if self._endpointFactory is not None:
            return self._endpointFactory(origin)
        endpoint = HostnameEndpoint(self.reactor, origin.host, origin.port,
                                    timeout=self.connectTimeout)
        if origin.secure:
            creator = self.tlsPolicy.creatorForNetloc(origin.host, origin.port)
            endpoint = wrapClientTLS(withALPN(creator), endpoint)
        return endpoint

    def buildConnection(self, origin):
        """(the connection factory) A new client connection to ``origin``."""
        proto = H2ClientProtocol(self.reactor, self.config, listener=self)
        self._originOf[proto] = origin
        return proto

    def _dial(self, origin, state):
        # Recorded before connecting: a connection can become ready (and
        # call back into the pool) inside connect().
        dial = state.dialing = _Dial()
        timer = self.reactor.callLater(self.connectTimeout, self._dialTimedOut, dial)
        try:
            dial.connecting = self.endpointFor(origin).connect(_ConnectionFactory(self, origin))
        except Exception:
            dial.connecting = Deferred()
            dial.connecting.errback()

        def connected(proto):
            dial.proto = proto
            return proto.whenReady()

        def done(result):
            if timer.active():
                timer.cancel()
            if state.dialing is dial:
                state.dialing = None
            if dial.timedOut and isinstance(result, Failure):
                return Failure(TimeoutError("connecting to %s://%s timed out after %gs" % (
                    origin.scheme.decode(), origin.authority.decode(), self.connectTimeout)))
            return result

        def ready(proto):
            self._addConnection(origin, state, proto)

        def failed(f):
            waiters, state.waiters = state.waiters, []
            for d in waiters:
                d.errback(f)
            if not any(proto.available for proto in state.connections):
                # Nothing else can take them: they fail with the dial.
                pending, state.pending = state.pending, deque()
                for entry in pending:
                    entry.deferred.errback(f)
            self._forget(origin, state)

        dial.connecting.addCallback(connected).addBoth(done).addCallbacks(ready, failed)

    def _dialTimedOut(self, dial):
        dial.timedOut = True
        proto = dial.proto
        if proto is not None and proto.transport is not None:
            proto.transport.abortConnection()
        dial.connecting.cancel()

    def _addConnection(self, origin, state, proto):
        if proto in state.connections or not proto.available:
            return
        state.connections.append(proto)
        if state.dialing is not None and state.dialing.proto in (None, proto):
            state.dialing = None
        waiters, state.waiters = state.waiters, []
        for d in waiters:
            d.callback(proto)
        self._pump(origin, state)

    # -- public API -------------------------------------------------------------------

    def startStream(self, origin, headers, handler=None, endStream=False, buildStream=None):
        """
        ``openStream`` without a Deferred when a connection has a free slot
        now: the ``H2Stream``, or None (then call ``openStream``).
        """
        state = self._origins.get(origin)
        if state is None or state.pending:
            return None
        proto = _leastLoaded(state.connections)
        if proto is None:
            return None
        return proto.startStream(headers, handler, endStream, buildStream)

    def openStream(self, origin, headers, handler=None, endStream=False, buildStream=None):
        """
        ``H2ClientProtocol.openStream`` on a connection to ``origin`` with a
        free slot, dialling one if needed; a Deferred firing with the
        ``H2Stream``.  Cancelling it before the stream opened takes the
        request out of the queue.
        """
        state = self._state(origin)
        if not state.pending:
            proto = _leastLoaded(state.connections)
            if proto is not None:
                return proto.openStream(headers, handler, endStream, buildStream)
        entry = _Pending(headers, handler, endStream, buildStream)
        entry.deferred = Deferred(lambda _: _remove(state.pending, entry))
        state.pending.append(entry)
        self._pump(origin, state)
        return entry.deferred

    def connectionFor(self, origin):
        """A Deferred firing with an available connection to ``origin`` (dialled if none)."""
        state = self._state(origin)
        for proto in state.connections:
            if proto.available:
                return succeed(proto)
        d = Deferred(lambda d: _remove(state.waiters, d))
        state.waiters.append(d)
        if state.dialing is None:
            self._dial(origin, state)
        return d

    def connections(self, origin):
        """The live connections to ``origin``."""
        state = self._origins.get(origin)
        return list(state.connections) if state is not None else []

    def closeCachedConnections(self):
        """GOAWAY on every connection, cancel dials; fires when all are closed."""
        waits = []
        for state in list(self._origins.values()):
            if state.dialing is not None and state.dialing.connecting is not None:
                state.dialing.connecting.cancel()
            for proto in list(state.connections):
                waits.append(proto.goAway())
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    # -- scheduling --------------------------------------------------------------------

    def _state(self, origin):
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _OriginState()
        return state

    def _forget(self, origin, state):
        if not state.connections and not state.pending and not state.waiters \
                and state.dialing is None and self._origins.get(origin) is state:
            del self._origins[origin]

    def _pump(self, origin, state):
        """Start what waits, on connections with free slots; dial when all are full."""
        pending = state.pending
        while pending:
            proto = _leastLoaded(state.connections)
            if proto is None:
                if state.dialing is None and len(state.connections) < self.maxConnectionsPerOrigin:
                    self._dial(origin, state)
                return
            entry = pending.popleft()
            proto.openStream(entry.headers, entry.handler, entry.endStream,
                             entry.buildStream).chainDeferred(entry.deferred)

    # -- IH2ConnectionListener ------------------------------------------------------------

    def connectionReady(self, connection):
        origin = self._originOf.get(connection)
        if origin is not None:
            self._addConnection(origin, self._state(origin), connection)

    def capacityChanged(self, connection):
        origin = self._originOf.get(connection)
        state = self._origins.get(origin)
        if state is not None and state.pending:
            self._pump(origin, state)

    def connectionGone(self, connection, reason):
        origin = self._originOf.get(connection)
        if reason is not None:
            self._originOf.pop(connection, None)
        state = self._origins.get(origin)
        if state is None:
            return
        if connection in state.connections:
            state.connections.remove(connection)
        if state.pending:
            self._pump(origin, state)
        self._forget(origin, state)


def _leastLoaded(connections):
    """The available connection with the most free slots, or None if all are full."""
    best = None
    bestFree = 0
    for proto in connections:
        if proto.available:
            free = proto.freeSlots
            if free > bestFree:
                best, bestFree = proto, free
    return best


def _remove(container, item):
    try:
        container.remove(item)
    except ValueError:
        pass
