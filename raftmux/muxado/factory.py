"""Factories that run muxado sessions on accepted and dialed connections."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Factory
from twisted.logger import Logger

from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.session import MuxadoSession


class _SessionFactoryMixin:
    isClient = False
    noisy = False

    def __init__(self, streamFactory: IProtocolFactory | None = None,
                 config: MuxadoConfig | None = None, reactor: IReactorTime | None = None,
                 registry: CollectorRegistry | None = None,
                 streamFactories: Mapping[int, IProtocolFactory] | None = None,
                 version: int | None = None) -> None:
        self.streamFactory = streamFactory
        self.streamFactories = dict(streamFactories or {})
        self.registry = registry
        self.config = config
        self.reactor = reactor
        self.version = version
        self.sessions: set[MuxadoSession] = set()

    def buildProtocol(self, addr):
        session = MuxadoSession(self.isClient, self.streamFactory, self.config, self.reactor,
                                self.registry, self.streamFactories, self.version)
        session.factory = self
        self.sessions.add(session)
        session.whenClosed().addCallback(lambda _: self.sessions.discard(session))
        return session

    def _streamFactories(self):
        factories = list(self.streamFactories.values())
        if self.streamFactory is not None:
            factories.append(self.streamFactory)
        return factories

    def doStart(self):
        for factory in self._streamFactories():
            factory.doStart()
        super().doStart()  # type: ignore[misc]

    def doStop(self):
        super().doStop()  # type: ignore[misc]
        for factory in self._streamFactories():
            factory.doStop()


class MuxadoServerFactory(_SessionFactoryMixin, Factory):
    """
    Accept muxado sessions (server role: even stream IDs), of either
    generation: each session tells v1 from v2 by the client's first frame.
    ``version=1`` or ``version=2`` accepts only that one (the other is
    refused with a log line and a closed connection).

    Every stream a peer opens is given to ``streamFactories[streamType]``
    when its type is listed, else to ``streamFactory.buildProtocol``; so
    ``MuxadoServerFactory(Site(root))`` serves HTTP/1.1 on every stream.
    ``sessions`` holds the live sessions; past ``maxSessions`` of them a new
    connection is closed at once (with a log line), so memory stays within
    ``maxSessions x maxIncomingStreams x window`` whatever peers do.
    """

    log = Logger()

    def __init__(self, streamFactory: IProtocolFactory | None,
                 config: MuxadoConfig | None = None, reactor: IReactorTime | None = None,
                 registry: CollectorRegistry | None = None,
                 streamFactories: Mapping[int, IProtocolFactory] | None = None,
                 version: int | None = None, maxSessions: int | None = None) -> None:
        _SessionFactoryMixin.__init__(self, streamFactory, config, reactor, registry,
                                      streamFactories, version)
        self.maxSessions = maxSessions
        self.sessionsRefused = 0

    def buildProtocol(self, addr):
        if self.maxSessions is not None and len(self.sessions) >= self.maxSessions:
            self.sessionsRefused += 1
            if self.sessionsRefused & (self.sessionsRefused - 1) == 0:  # 1, 2, 4, 8, ...
                self.log.warn("muxado: refusing a session from {peer}: {n} sessions open "
                              "(maxSessions); {refused} refused so far", peer=addr,
                              n=len(self.sessions), refused=self.sessionsRefused)
            return None
        return _SessionFactoryMixin.buildProtocol(self, addr)


class MuxadoClientFactory(_SessionFactoryMixin, ClientFactory):
    """Dial muxado sessions (client role: odd stream IDs from 3) of ``config.version``."""

    isClient = True


def connectSession(endpoint: IStreamClientEndpoint,
                   streamFactory: IProtocolFactory | None = None,
                   config: MuxadoConfig | None = None, reactor: IReactorTime | None = None,
                   registry: CollectorRegistry | None = None,
                   streamFactories: Mapping[int, IProtocolFactory] | None = None,
                   ) -> Deferred[MuxadoSession]:
    """
    Connect ``endpoint`` and run a client session on it, speaking
    ``config.version`` (default 2); returns a Deferred firing with the
    ``MuxadoSession``.  Streams the server opens go to
    ``streamFactories``/``streamFactory`` (or wait for ``session.acceptStream``).
    """
    return endpoint.connect(MuxadoClientFactory(  # type: ignore[return-value]
        streamFactory, config, reactor, registry, streamFactories))
