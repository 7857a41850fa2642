"""Endpoints whose connections are streams of a muxado session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocol, IProtocolFactory

if TYPE_CHECKING:
    from raftmux.muxado.session import MuxadoSession
from twisted.internet.defer import fail
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer


@implementer(IStreamClientEndpoint)
class SessionEndpoint:
    """
    ``connect(factory)`` opens a new stream on ``session`` and connects the
    factory's protocol to it, so any client protocol can run over muxado.
    It is also its own endpoint factory (``endpointForURI``), so
    ``Agent.usingEndpointFactory(reactor, SessionEndpoint(session))`` sends
    every HTTP request over streams of that one session.
    """

    def __init__(self, session: MuxadoSession) -> None:
        self.session = session

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        address = self.session.transport.getPeer() if self.session.transport else None
        protocol = protocolFactory.buildProtocol(address)  # type: ignore[arg-type]
        if protocol is None:
            return fail(ConnectingCancelledError(address))
        return self.session.openStream(protocol)

    def endpointForURI(self, uri: Any) -> SessionEndpoint:
        return self
