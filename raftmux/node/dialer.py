# -*- test-case-name: raftmux.test.test_node -*-
"""
``PeerDialer``: the endpoint factory under the node's HTTP ``Agent``.  Each
request to a peer goes either over a new (pooled) TCP connection, the way
etcd does it, or as a stream of the one muxado session a pair of raftmux
nodes shares.

Which one is decided per peer address by asking ``GET /version`` once: a
raftmux node adds a ``"raftmux"`` field (etcd ignores unknown fields), an
etcd member does not.  Between two raftmux nodes only the member with the
smaller ID dials the session; the other adopts it when the first request
arrives on it carrying ``X-Server-From`` (``adopt``), so a pair never holds
two sessions.  A session that ends is forgotten and made again on demand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.web.client import Agent
from twisted.web.iweb import IAgent, IAgentEndpointFactory
from zope.interface import implementer

from raftmux.httpbody import discardBody, readBody
from raftmux.muxado import MuxadoConfig, MuxadoSession, SessionEndpoint, connectSession
from raftmux.node.config import addressOf
from raftmux.tls import HTTP11, MUXADO_ALPN, ClientPolicy

__all__ = ["PeerDialer", "MUXADO", "PLAIN", "isRaftmuxVersion"]

MUXADO = "muxado"
PLAIN = "plain"

#: The most of a ``/version`` answer read (etcd's is about 50 bytes).
VERSION_BODY_LIMIT = 64 * 1024


def isRaftmuxVersion(body):
    """Does a ``/version`` body come from a raftmux node?"""
    try:
        return "raftmux" in json.loads(body)
    except (ValueError, TypeError):
        return False


@implementer(IAgentEndpointFactory)
class PeerDialer:
    """
    ``localID``: this member's ID (for the who-dials rule).
    ``streamFactory``: serves the streams a peer opens on sessions we dial
    (the node's Site; may be set after construction).
    ``clientEndpoint(scheme, host, port, protocols)``: the endpoint to a
    peer; defaults to ``HostnameEndpoint``, wrapped in TLS for https with
    ``tlsPolicy`` (a ``raftmux.tls.ClientPolicy``) offering ``protocols``
    over ALPN (``raftmux-muxado/1`` for sessions, ``http/1.1`` otherwise).
    ``useMuxado``: False turns sessions off (every peer is plain rafthttp).
    ``onKindChange(address, kind)``: told whenever what an address speaks
    becomes known (``MUXADO``, ``PLAIN``) or is forgotten (``None``).
    """

    log = Logger()

    def __init__(self, reactor: Any, localID: int, streamFactory: IProtocolFactory | None = None,
                 clientEndpoint: Callable[..., IStreamClientEndpoint] | None = None,
                 connectTimeout: float = 2.0, sessionConfig: MuxadoConfig | None = None,
                 registry: CollectorRegistry | None = None, useMuxado: bool = True,
                 probeAgent: IAgent | None = None, tlsPolicy: ClientPolicy | None = None,
                 onKindChange: Callable[[tuple[str, int], str | None], object] | None = None,
                 ) -> None:
        self.reactor = reactor
        self.localID = localID
        self.streamFactory = streamFactory
        self.connectTimeout = connectTimeout
        self.sessionConfig = sessionConfig
        self.registry = registry
        self.useMuxado = useMuxado
        self._clientEndpoint = clientEndpoint
        self.tlsPolicy = tlsPolicy
        self.onKindChange = onKindChange
        # by address: (host, port) as addressOf(url) gives it
        self.kinds: dict[tuple[Any, Any], str] = {}
        self.sessions: dict[tuple[Any, Any], MuxadoSession] = {}
        self.peerIDs: dict[tuple[Any, Any], int] = {}
        #: TCP connections made, per (address, kind): what the tests count.
        self.dials: Counter[Any] = Counter()
        self._probes: dict[Any, Any] = {}
        self._dialing: dict[Any, Any] = {}
        self._waiters: dict[Any, list[Any]] = {}
        self._probeAgent = probeAgent
        self._stopped = False
        self._connecting: set[Any] = set()

    # -- membership -------------------------------------------------------------

    def setPeer(self, peerID: int, urls: Sequence[str]) -> None:
        """Tell the dialer which member answers at ``urls`` (``scheme://host:port``)."""
        for url in urls:
            self.peerIDs[addressOf(url)] = peerID

    def removePeer(self, peerID: int) -> None:
        for address in [a for a, i in self.peerIDs.items() if i == peerID]:
            del self.peerIDs[address]
            session = self.sessions.pop(address, None)
            if session is not None:
                session.close()

    # -- IAgentEndpointFactory --------------------------------------------------

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        scheme = uri.scheme.decode("ascii") if isinstance(uri.scheme, bytes) else uri.scheme
        return _PeerEndpoint(self, scheme, host, uri.port)

    def clientEndpoint(self, scheme, host, port, protocols=(HTTP11,)):
        if self._clientEndpoint is not None:
            return self._clientEndpoint(scheme, host, port, protocols)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self.reactor, host, port,
                                                           timeout=self.connectTimeout)
        if scheme == "https":
            if self.tlsPolicy is None:
                raise ConnectError(string="https://%s:%d needs the peer TLS flags" % (host, port))
            endpoint = wrapClientTLS(self.tlsPolicy.creatorFor(host, list(protocols)), endpoint)
        return endpoint

    # -- sessions ---------------------------------------------------------------

    def adopt(self, peerID: int | None, session: MuxadoSession) -> None:
        """A session ``peerID`` dialed to us: use it for our requests to it too."""
        if not peerID or peerID == self.localID or not session.isOpen:
            return
        for address, owner in list(self.peerIDs.items()):
            if owner != peerID:
                continue
            current = self.sessions.get(address)
            if current is session:
                continue
            if current is not None and current.isOpen:
                continue
            self._keep(address, session, adopted=True)

    def _keep(self, address, session, adopted=False):
        self.sessions[address] = session
        self._setKind(address, MUXADO)
        self.log.info("muxado session with {peer} ({how})", peer="%s:%d" % address,
                      how="accepted" if adopted else "dialed")

        def gone(_):
            if self.sessions.get(address) is session:
                del self.sessions[address]
                self.log.info("muxado session with {peer} ended", peer="%s:%d" % address)
        session.whenClosed().addBoth(gone)
        for d in self._waiters.pop(address, []):
            if not d.called:
                d.callback(session)

    def session(self, scheme: str, host: str, port: int) -> Deferred[MuxadoSession]:
        """A Deferred firing with the live session to this address."""
        address = (host, port)
        session = self.sessions.get(address)
        if session is not None and session.isOpen:
            return defer.succeed(session)
        peerID = self.peerIDs.get(address)
        if peerID is not None and peerID < self.localID:
            return self._waitForPeer(scheme, address, peerID)
        return _share(self._dialing, address, lambda: self._dial(scheme, address))

    def _dial(self, scheme, address):
        self.dials[(address, MUXADO)] += 1
        try:
            host, port = address
            endpoint = self.clientEndpoint(scheme, host, port, protocols=(MUXADO_ALPN,))
        except ConnectError:
            return defer.fail()

        def connected(session):
            self._keep(address, session)
            return session

        def failed(f):
            # Re-ask /version next time: the address may now be someone else.
            self._setKind(address, None)
            return f
        d = self.track(connectSession(endpoint, self.streamFactory, self.sessionConfig,
                                      self.reactor, self.registry))
        return d.addCallbacks(connected, failed)

    def track(self, d):
        """Keep ``d`` (a connection attempt) so that ``stop`` can cancel it."""
        if self._stopped:
            d.cancel()
            return d
        self._connecting.add(d)

        def done(result):
            self._connecting.discard(d)
            return result
        return d.addBoth(done)

    @property
    def stopped(self):
        return self._stopped

    def stop(self, timeout: float = 2.0) -> Deferred[Any]:
        """
        Cancel every connection attempt and close every session.  The
        Deferred fires once they have all ended; a session still open after
        ``timeout`` seconds (a peer that never answers the TLS close) is
        aborted.
        """
        self._stopped = True
        for d in list(self._connecting):
            d.cancel()
        for d in list(self._waiters.values()):
            for waiter in list(d):
                if not waiter.called:
                    waiter.errback(ConnectError(string="dialer stopped"))
        self._waiters = {}
        sessions = list(self.sessions.values())
        ended = [session.whenClosed() for session in sessions]
        for session in sessions:
            session.close()
        done = defer.DeferredList(ended, consumeErrors=True)
        if not done.called:
            def abort():
                for session in sessions:
                    if session.transport is not None:
                        session.transport.abortConnection()
            call = self.reactor.callLater(timeout, abort)
            done.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return done

    def _waitForPeer(self, scheme, address, peerID):
        """
        Wait for the member with the smaller ID to dial; if it has not
        within the connect timeout (it may think us removed, or not know us
        yet), dial ourselves rather than go silent.
        """
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.setdefault(address, []).append(d)

        def expire():
            if not d.called:
                self._waiters.get(address, []).remove(d)
                self.log.info("member {peer:x} did not open a session; dialing it",
                              peer=peerID)
                _share(self._dialing, address,
                       lambda: self._dial(scheme, address)).chainDeferred(d)
        call = self.reactor.callLater(self.connectTimeout, expire)
        d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d

    # -- which kind -------------------------------------------------------------

    def _setKind(self, address, kind):
        before = self.kinds.get(address)
        if kind is None:
            self.kinds.pop(address, None)
        else:
            self.kinds[address] = kind
        if kind != before and self.onKindChange is not None:
            self.onKindChange(address, kind)

    def kind(self, scheme: str, host: str, port: int) -> Deferred[str]:
        """A Deferred firing with ``MUXADO`` or ``PLAIN`` for this address."""
        address = (host, port)
        if not self.useMuxado:
            return defer.succeed(PLAIN)
        known = self.kinds.get(address)
        if known is not None:
            return defer.succeed(known)
        return _share(self._probes, address, lambda: self._probe(scheme, address))

    def _probe(self, scheme, address):
        agent = self._probeAgent
        if agent is None:
            agent = Agent.usingEndpointFactory(self.reactor, _Direct(self))
        self.dials[(address, "probe")] += 1
        url = ("%s://%s:%d/version" % (scheme, address[0], address[1])).encode("ascii")
        d = self.track(agent.request(b"GET", url))
        timeout = self.reactor.callLater(self.connectTimeout * 2, d.cancel)

        def answered(response):
            if response.code != 200:
                # A member still starting, or a proxy: ask again later.
                discardBody(response)
                raise ConnectError(string="GET /version answered %d" % (response.code,))
            return readBody(response, VERSION_BODY_LIMIT)

        def decided(body):
            kind = MUXADO if isRaftmuxVersion(body) else PLAIN
            self._setKind(address, kind)
            self.log.info("peer {peer} speaks {kind}", peer="%s:%d" % address, kind=kind)
            return kind

        def done(r):
            if timeout.active():
                timeout.cancel()
            return r
        return d.addCallback(answered).addCallback(decided).addBoth(done)


def _share(pending, key, start):
    """
    One operation per key at a time: callers while it runs get their own
    Deferred with its result (so no caller's errback affects another's).
    """
    d: defer.Deferred[Any] = defer.Deferred()
    waiters = pending.get(key)
    if waiters is not None:
        waiters.append(d)
        return d
    waiters = pending[key] = [d]

    def finished(result):
        del pending[key]
        for w in waiters:
            w.callback(result)
    start().addBoth(finished)
    return d


class _Direct:
    """Endpoint factory for the ``/version`` question: always plain TCP."""

    def __init__(self, dialer):
        self.dialer = dialer

    def endpointForURI(self, uri):
        return self.dialer.clientEndpoint(uri.scheme.decode("ascii"), uri.host.decode("ascii"),
                                          uri.port, (HTTP11,))


@implementer(IStreamClientEndpoint)
class _PeerEndpoint:
    """One request's endpoint: decides plain TCP or a muxado stream at connect."""

    def __init__(self, dialer, scheme, host, port):
        self.dialer = dialer
        self.scheme = scheme
        self.host = host
        self.port = port

    def connect(self, protocolFactory):
        dialer = self.dialer
        if dialer.stopped:
            return defer.fail(ConnectError(string="dialer stopped"))

        def withKind(kind):
            if kind == MUXADO:
                d = dialer.session(self.scheme, self.host, self.port)
                return d.addCallback(lambda s: SessionEndpoint(s).connect(protocolFactory))
            dialer.dials[((self.host, self.port), PLAIN)] += 1
            return dialer.track(dialer.clientEndpoint(
                self.scheme, self.host, self.port, (HTTP11,)).connect(protocolFactory))
        return dialer.kind(self.scheme, self.host, self.port).addCallback(withKind)
