# -*- test-case-name: raftmux.test.test_muxado_endpointstring -*-
"""
``muxado:`` endpoint strings, so any Twisted program can serve and dial over
muxado without code:

    serverFromString(reactor, r"muxado:tcp\\:8080")
        # every stream of every session accepted on tcp:8080 gets a protocol
        # from the factory given to listen(); sessions of either generation
    clientFromString(reactor, r"muxado:tcp\\:host\\:8080")
        # each connect() opens a new stream over ONE session to tcp:host:8080,
        # dialled on first use and again after it ends

The first argument is the inner endpoint description (escape its colons and
equals signs: ``muxado:tcp\\:0\\:interface\\=127.0.0.1``).
Keyword options: ``version=1|2`` (a client speaks it, default 2; a server
accepts only it, default both), ``heartbeat=yes|no``.  So
``twistd web --listen 'muxado:tcp\\:8080'`` serves a Site on every stream.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.factory import MuxadoServerFactory, connectSession
from raftmux.muxado.session import MuxadoSession

__all__ = ["MuxadoClientEndpoint", "MuxadoServerEndpoint", "clientParser", "serverParser"]


def _config(version=None, heartbeat=None):
    options: dict[str, Any] = {}
    if version is not None:
        options["version"] = int(version)
    if heartbeat is not None:
        options["heartbeat"] = heartbeat.lower() in ("yes", "true", "1", "on")
    return MuxadoConfig(**options)


@implementer(IStreamServerEndpoint)
class MuxadoServerEndpoint:
    """``listen(factory)``: sessions on ``inner``, ``factory`` on every stream."""

    def __init__(self, inner: IStreamServerEndpoint, config: MuxadoConfig | None = None,
                 version: int | None = None) -> None:
        self.inner = inner
        self.config = config
        self.version = version

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.inner.listen(MuxadoServerFactory(protocolFactory, self.config,
                                                     version=self.version))


@implementer(IStreamClientEndpoint)
class MuxadoClientEndpoint:
    """
    ``connect(factory)`` opens a stream over one session to ``inner``, shared
    by every connect of this endpoint; a new session is dialled when there is
    none, or the last one has closed or gone away.
    """

    def __init__(self, inner: IStreamClientEndpoint, config: MuxadoConfig | None = None) -> None:
        self.inner = inner
        self.config = config
        self._session: MuxadoSession | None = None
        self._waiting: list[Deferred[Any]] | None = None  # waiting for a session being dialled

    @property
    def session(self) -> MuxadoSession | None:
        """The session streams go over now (None before the first connect)."""
        return self._session

    def _sessionReady(self):
        session = self._session
        if session is not None and session.isOpen:
            return succeed(session)
        d: Deferred[Any] = Deferred()
        if self._waiting is not None:
            self._waiting.append(d)
            return d
        self._waiting = [d]

        def settle(result):
            waiting, self._waiting = self._waiting, None
            if not isinstance(result, Failure):
                self._session = result
            for waiter in waiting:  # type: ignore[union-attr]
                waiter.callback(result)

        connectSession(self.inner, config=self.config).addBoth(settle)
        return d

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        def open(session):
            protocol = protocolFactory.buildProtocol(session.transport.getPeer())
            return session.openStream(protocol)
        return self._sessionReady().addCallback(open)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _ServerParser:
    prefix = "muxado"

    def parseStreamServer(  # type: ignore[override]
            self, reactor, inner, version=None, heartbeat=None):
        return MuxadoServerEndpoint(serverFromString(reactor, inner),
                                    _config(None, heartbeat),
                                    None if version is None else int(version))


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class _ClientParser:
    prefix = "muxado"

    def parseStreamClient(  # type: ignore[override]
            self, reactor, inner, version=None, heartbeat=None):
        return MuxadoClientEndpoint(clientFromString(reactor, inner), _config(version, heartbeat))


serverParser = _ServerParser()
clientParser = _ClientParser()
