# -*- test-case-name: raftmux.test.test_sniff -*-
"""
The Twisted shell around the matchers: a ``ServerFactory`` whose protocol
buffers a connection's first bytes, asks the matchers in order, and hands
the real transport to the first route that matches.

The hand-off is AMP's ``_switchTo`` shape: ``factory.buildProtocol(peer)``,
``proto.makeConnection(transport)`` with the *real* transport (so the
protocol still sees ``ITCPTransport``/``ISSLTransport`` and can register
producers), then the sniffed bytes replayed once.  The sniffer then rebinds
the transport to the new protocol (``transport.protocol`` for TCP, UNIX and
iosim transports, ``transport.wrappedProtocol`` for TLS), so later bytes go
straight to it and no wrapper is left in the data path.  On transports it
cannot rebind, it forwards ``dataReceived``/``connectionLost`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet.interfaces import (
    IHandshakeListener,
    IProtocolFactory,
    IProtocolNegotiationFactory,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from raftmux._log import RateLimitedLog
from raftmux.sniff import _h2, _web
from raftmux.sniff._metrics import metricsFor
from raftmux.sniff._results import MATCH, NEED_MORE, NO_MATCH
from raftmux.sniff.matchers import Matcher

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 4096
LOG_HEAD_BYTES = 32

_SNIFFING, _SWITCHED, _CLOSED = "sniffing", "switched", "closed"


class _Route:
    """One (matcher, factory) pair, with its metric label and hand-off style."""

    __slots__ = ("matcher", "factory", "label", "h2Site", "matched")
    matched: Any

    def __init__(self, matcher, factory, label, protocolName):
        self.matcher = matcher
        self.factory = factory
        self.label = label
        self.h2Site = protocolName == b"h2" and _web.isH2Site(factory)


class _NoRoute:
    def __repr__(self):
        return "NO_ROUTE"


_NO_ROUTE = _NoRoute()


@implementer(IHandshakeListener)
class SniffingProtocol(Protocol):
    """
    One connection being sniffed.  After the hand-off it is normally
    unreferenced; it only stays in the path on transports it cannot rebind,
    or while it removes the client's ACK of its own HTTP/2 SETTINGS.
    """

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    _state = _SNIFFING
    _buffer = b""
    _greeted = False
    _ackFilter = None
    _handshakeDone = False
    _awaitHandshake = False
    _rebound = False
    proto: Any = None

    def __init__(self, factory, addr=None):
        self.factory = factory
        self._addr = addr  # the peer, as the port gave it to buildProtocol

    def logPrefix(self):
        return "SniffingProtocol"

    def connectionMade(self):
        factory = self.factory
        factory._track(self)
        # Inside TLS with ALPN routes, wait: ALPN may decide before any byte.
        if factory._alpnRoutes and _isTLS(self.transport):
            self._awaitHandshake = True
        elif factory._decidesWithoutBytes:
            self._evaluate(final=False)

    def handshakeCompleted(self):
        self._handshakeDone = True
        if self._state is _SWITCHED:
            # Only reached when the transport could not be rebound.
            if IHandshakeListener.providedBy(self.proto):
                self.proto.handshakeCompleted()
            return
        if self._state is not _SNIFFING:
            return
        self._awaitHandshake = False
        token = getattr(self.transport, "negotiatedProtocol", None)
        route = self.factory._alpnRoutes.get(token)
        if route is not None:
            self._handOff(route)
        else:
            self._evaluate(final=False)

    def dataReceived(self, data):
        state = self._state
        if state is _SWITCHED:
            if self._ackFilter is not None:
                data = self._ackFilter.feed(data)
                if self._ackFilter.done:
                    self._ackFilter = None
                    self._rebind()
                if not data:
                    return
            self.proto.dataReceived(data)
            return
        if state is not _SNIFFING:
            return
        self._buffer = self._buffer + data if self._buffer else data
        if not self._awaitHandshake:
            self._evaluate(final=False)

    def connectionLost(self, reason=connectionDone):
        state, self._state = self._state, _CLOSED
        if state is _SWITCHED:
            proto, self.proto = self.proto, None
            proto.connectionLost(reason)
        elif state is _SNIFFING:
            self._stopSniffing()
            self.factory._count["lost"].inc()
            self._buffer = b""

    # -- deciding ---------------------------------------------------------

    def _evaluate(self, final):
        """Ask the matchers; hand off, wait, or reject."""
        route = self.factory._decide(self._buffer, final)
        if route is None:
            if not self._greeted and self.factory._greeters:
                self._greet()
            return
        if route is _NO_ROUTE:
            if len(self._buffer) >= self.factory.maxBytes:
                self._reject("overLimit", "sent {size} bytes without a match")
            else:
                self._reject("unmatched", "matched no route")
            return
        self._handOff(route)

    def _greet(self):
        """Write the waiting matcher's greeting, once per connection."""
        matcher = self.factory._waitingMatcher(self._buffer)
        greeting = getattr(matcher, "greeting", None)
        if greeting is None:
            return
        payload = greeting(self._buffer)
        if payload:
            self._greeted = True
            if payload == _h2.EMPTY_SETTINGS:
                self._ackFilter = _h2.SettingsAckFilter()
            self.transport.write(payload)

    def _timedOut(self):
        if self._state is not _SNIFFING:
            return
        route = self.factory._decide(self._buffer, final=True)
        if route is None or route is _NO_ROUTE:
            self._reject("timedOut", "sent no matching bytes within {timeout}s")
        else:
            self._handOff(route)

    def _stopSniffing(self):
        self.factory._sniffing.pop(self, None)

    def _reject(self, outcome, why):
        factory = self.factory
        self._state = _CLOSED
        self._stopSniffing()
        factory._count[outcome].inc()
        data, self._buffer = self._buffer, b""
        factory._rejections.emit(
            LogLevel.info, "%s: closing connections: %s" % (factory.name, outcome),
            "{sniffer}: closing connection from {peer}: " + why
            + "; first bytes {head}",
            sniffer=factory.name, peer=_peer(self.transport), outcome=outcome,
            size=len(data), timeout=factory.timeout, head=data[:LOG_HEAD_BYTES].hex())
        _abort(self.transport)

    def abortSniffing(self):
        """Close this connection if it is still being sniffed (shutdown)."""
        if self._state is not _SNIFFING:
            return
        self._state = _CLOSED
        self._stopSniffing()
        self.factory._count["lost"].inc()
        self._buffer = b""
        _abort(self.transport)

    # -- handing off ------------------------------------------------------

    def _handOff(self, route):
        transport = self.transport
        self._stopSniffing()
        data, self._buffer = self._buffer, b""
        if route.h2Site:
            proto = _web.buildH2Connection(route.factory)
        else:
            addr = self._addr
            proto = route.factory.buildProtocol(transport.getPeer() if addr is None else addr)
        if proto is None:
            self._state = _CLOSED
            _abort(transport)
            return
        route.matched.inc()
        self._state = _SWITCHED
        self.proto = proto
        if self._ackFilter is not None:
            data = self._ackFilter.feed(data)
            if self._ackFilter.done:
                self._ackFilter = None
        if self._ackFilter is None:
            self._rebind()
        proto.makeConnection(transport)
        if route.h2Site:
            transport.registerProducer(proto, True)
        if self._handshakeDone and IHandshakeListener.providedBy(proto):
            proto.handshakeCompleted()
        if data and self._state is _SWITCHED:
            proto.dataReceived(data)

    def _rebind(self):
        """Point the transport at the chosen protocol, dropping this one."""
        transport = self.transport
        if getattr(transport, "protocol", None) is self:
            transport.protocol = self.proto
            self._rebound = True
        elif getattr(transport, "wrappedProtocol", None) is self:
            transport.wrappedProtocol = self.proto
            self._rebound = True


def _greets(matcher):
    """Does ``matcher`` have a greeting of its own (not the base class no-op)?"""
    greeting = getattr(type(matcher), "greeting", None)
    return callable(greeting) and greeting is not Matcher.greeting


def _canStartWith(matcher, byte):
    firstBytes = getattr(matcher, "firstBytes", None)
    return firstBytes is None or byte in firstBytes


def _isTLS(transport):
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    return isinstance(transport, TLSMemoryBIOProtocol)


def _abort(transport):
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def _peer(transport):
    try:
        peer = transport.getPeer()
    except Exception:
        return "?"
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is not None and port is not None:
        return "%s:%s" % (host, port)
    return str(peer)


@implementer(IProtocolNegotiationFactory)
class SniffingFactory(ServerFactory):
    """
    Give each connection to the factory of the first matcher that matches
    its first bytes.

    @param routes: ``[(matcher, factory), ...]`` or ``(matcher, factory,
        label)``, tried in order; the first ``MATCH`` wins, and a matcher
        answering ``NEED_MORE`` holds back the ones after it (cmux's order).
    @param timeout: seconds for the whole sniff, from accept (cmux's single
        deadline, not per read).  At the deadline, matchers still waiting
        count as not matching, so an ``anyBytes()`` route can still take the
        connection; otherwise it is closed.  ``None`` means no deadline
        (not recommended: a silent client then waits forever).
    @param maxBytes: most bytes buffered before deciding; a connection
        that reaches it without a match is closed.  Each matcher also has
        its own ``maxBytes``.
    @param alpn: ``{token: factory}`` for a sniffer inside TLS: the tokens
        are offered over ALPN (``IProtocolNegotiationFactory``) in this
        order, and a negotiated token routes the connection at the end of
        the handshake, before any byte.  Without an ALPN result the bytes
        are sniffed with ``routes`` as usual.
    @param clock: ``IReactorTime`` for the deadline (default: the reactor).
    @param registry: a prometheus ``CollectorRegistry`` (default
        ``raftmux.sniff.REGISTRY``).
    @param name: the ``sniffer`` metric label and log prefix.
    @param maxSniffing: most connections sniffed at once; beyond it new
        connections are closed on accept (``None``: no limit).
    """

    log = Logger()
    noisy = False
    protocol = SniffingProtocol

    def __init__(self, routes: Sequence[tuple[Any, ...]], timeout: float | None = DEFAULT_TIMEOUT,
                 maxBytes: int = DEFAULT_MAX_BYTES,
                 alpn: Mapping[bytes, IProtocolFactory] | None = None,
                 clock: IReactorTime | None = None, registry: CollectorRegistry | None = None,
                 name: str = "sniff", maxSniffing: int | None = None) -> None:
        built = []
        for index, route in enumerate(routes):
            if len(route) == 3:
                matcher, factory, label = route
            else:
                matcher, factory = route
                label = "%d-%s" % (index, getattr(matcher, "name", "matcher"))
            built.append(_Route(matcher, factory, label, getattr(matcher, "protocolName", None)))
        self._routes = tuple(built)
        # The routes worth asking, by a connection's first byte.
        self._routesByFirstByte = tuple(
            tuple(r for r in self._routes if _canStartWith(r.matcher, byte)) for byte in range(256))
        self._alpnRoutes = {
            token: _Route(None, factory, "alpn-" + token.decode("ascii", "replace"), token)
            for token, factory in (alpn or {}).items()}
        if not self._routes and not self._alpnRoutes:
            raise ValueError("SniffingFactory needs at least one route")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive or None")
        if maxBytes < 1:
            raise ValueError("maxBytes must be at least 1")
        self._greeters = any(_greets(r.matcher) for r in self._routes)
        # Only a matcher that needs no byte (anyBytes) can decide at accept.
        self._decidesWithoutBytes = any(r.matcher.maxBytes == 0 for r in self._routes)
        self.timeout = timeout
        self.maxBytes = maxBytes
        self._clock = clock
        self.name = name
        self.maxSniffing = maxSniffing
        self.metrics = metrics = metricsFor(registry)
        # Bound label children: labels() costs more than the sniff itself.
        self._count = {outcome: getattr(metrics, outcome).labels(name) for outcome in
                       ("unmatched", "timedOut", "overLimit", "refused", "lost")}
        # Read at scrape time: no per-connection cost.
        metrics.sniffing.labels(name).set_function(lambda: len(self._sniffing))
        for each in self._routes + tuple(self._alpnRoutes.values()):
            each.matched = metrics.matched.labels(name, each.label)
        # Connections being sniffed -> their deadline, in accept order; one
        # timer for the earliest (a callLater per connection cost more than
        # the rest of the sniff together).
        self._sniffing: dict[Any, Any] = {}
        self._sweeper = None
        # A flood of bad connections costs a few log lines per minute, per outcome.
        self._rejections = RateLimitedLog(self.log)

    @property
    def clock(self):
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        return self._clock

    @property
    def sniffing(self) -> int:
        """How many connections are being sniffed now."""
        return len(self._sniffing)

    def acceptableProtocols(self) -> list[bytes]:
        return list(self._alpnRoutes)

    def buildProtocol(self, addr):
        if self.maxSniffing is not None and len(self._sniffing) >= self.maxSniffing:
            self._count["refused"].inc()
            return None
        return self.protocol(self, addr)

    def _track(self, protocol):
        """Start ``protocol``'s deadline: ``timeout`` seconds from now."""
        if self.timeout is None:
            self._sniffing[protocol] = None
            return
        clock = self.clock
        self._sniffing[protocol] = clock.seconds() + self.timeout
        if self._sweeper is None:
            self._sweeper = clock.callLater(self.timeout, self._sweep)

    def _sweep(self):
        """Time out every connection past its deadline; wait for the next one."""
        self._sweeper = None
        now = self.clock.seconds()
        expired = []
        for protocol, deadline in self._sniffing.items():
            if deadline is None:
                continue
            if deadline > now:
                # Accept order is deadline order while timeout is unchanged.
                self._sweeper = self.clock.callLater(deadline - now, self._sweep)
                break
            expired.append(protocol)
        for protocol in expired:
            protocol._timedOut()

    def _factories(self):
        seen: list[Any] = []
        for route in self._routes + tuple(self._alpnRoutes.values()):
            if not any(route.factory is f for f in seen):
                seen.append(route.factory)
        return seen

    def startFactory(self):
        # The routes' factories listen through us, so they start and stop
        # with us (as WrappingFactory does for its wrapped factory).
        for factory in self._factories():
            factory.doStart()

    def stopFactory(self):
        self.closeSniffing()
        self._rejections.flush()
        for factory in self._factories():
            factory.doStop()

    def closeSniffing(self) -> None:
        """
        Close every connection still being sniffed; connections already
        handed off are their protocols' business.  Called when the last port
        using this factory stops listening, so shutdown never waits on a
        silent client (cmux issues #76, #89).
        """
        for protocol in list(self._sniffing):
            protocol.abortSniffing()
        if self._sweeper is not None:
            if self._sweeper.active():
                self._sweeper.cancel()
            self._sweeper = None

    def _decide(self, data, final):
        """
        The first matching route; ``None`` to wait for more bytes; or
        ``_NO_ROUTE``.  ``final`` (deadline reached) and the byte limits turn
        a matcher's ``NEED_MORE`` into ``NO_MATCH``.
        """
        size = len(data)
        capped = final or size >= self.maxBytes
        for route in self._candidates(data):
            matcher = route.matcher
            result = matcher.match(data)
            if result is MATCH:
                return route
            if result is NEED_MORE and not capped and size < matcher.maxBytes:
                return None
            if result is not NO_MATCH and result is not NEED_MORE:
                raise TypeError("%r returned %r" % (matcher, result))
        return _NO_ROUTE

    def _candidates(self, data):
        """The routes, in order, that ``data``'s first byte does not rule out."""
        return self._routesByFirstByte[data[0]] if data else self._routes

    def _waitingMatcher(self, data):
        """The matcher that is holding the decision back (for its greeting)."""
        for route in self._candidates(data):
            result = route.matcher.match(data)
            if result is NEED_MORE:
                return route.matcher
            if result is MATCH:
                return None
        return None
