"""Factories that run muxado sessions on accepted and dialed connections."""

from twisted.internet.protocol import ClientFactory, Factory

from raftmux.muxado.session import MuxadoSession


class _SessionFactoryMixin:
    isClient = False

    def __init__(self, streamFactory=None, config=None, reactor=None, registry=None):
        self.streamFactory = streamFactory
        self.registry = registry
        self.config = config
        self.reactor = reactor
        self.sessions = set()

    def buildProtocol(self, addr):
        session = MuxadoSession(self.isClient, self.streamFactory, self.config, self.reactor,
                                self.registry)
        session.factory = self
        self.sessions.add(session)
        session.whenClosed().addCallback(lambda _: self.sessions.discard(session))
        return session

    def doStart(self):
        if self.streamFactory is not None:
            self.streamFactory.doStart()
        super().doStart()

    def doStop(self):
        super().doStop()
        if self.streamFactory is not None:
            self.streamFactory.doStop()


class MuxadoServerFactory(_SessionFactoryMixin, Factory):
    """
    Accept muxado sessions (server role: even stream IDs).  Every stream a
    peer opens is given to ``streamFactory.buildProtocol``; so
    ``MuxadoServerFactory(Site(root))`` serves HTTP/1.1 on every stream.
    ``sessions`` holds the live sessions.
    """

    def __init__(self, streamFactory, config=None, reactor=None, registry=None):
        _SessionFactoryMixin.__init__(self, streamFactory, config, reactor, registry)


class MuxadoClientFactory(_SessionFactoryMixin, ClientFactory):
    """Dial muxado sessions (client role: odd stream IDs from 3)."""

    isClient = True


def connectSession(endpoint, streamFactory=None, config=None, reactor=None, registry=None):
    """
    Connect ``endpoint`` and run a client session on it; returns a Deferred
    firing with the ``MuxadoSession``.  Streams the server opens go to
    ``streamFactory`` (or wait for ``session.acceptStream``).
    """
    return endpoint.connect(MuxadoClientFactory(streamFactory, config, reactor, registry))
