# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
The server side: a reloadable ``IOpenSSLServerConnectionCreator`` built
from a ``TLSInfo``, and the ``TLSMemoryBIOFactory`` that logs every failed
handshake once, naming the peer and the reason.

With ``clientCertAuth`` the client must present a certificate that chains
to ``trustedCAFile``, is inside its validity window and carries the
clientAuth usage (OpenSSL checks all three); with ``allowedCN`` /
``allowedHostnames`` the leaf must also carry an allowed name.  All of it
happens in the OpenSSL verify callback, so a refused client gets a TLS
alert during the handshake rather than a connection that closes later.
Twisted itself never checks a client's identity.  With
``optionalClientCertificates`` (and a trusted CA file) a server without
``clientCertAuth`` asks for a certificate but does not require one: one
presented is verified the same way, and the application decides what a
connection without one may do (the node's one-port layout).

The callback only records why it refused; the factory's protocol logs,
when the handshake ends without completing, using that record or the
OpenSSL error (no certificate at all never reaches the callback).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from OpenSSL import SSL
from prometheus_client import CollectorRegistry
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from raftmux.sniff import SniffingFactory, tls
from raftmux.tls._context import VERIFY_REQUIRE, buildContext, peerOf
from raftmux.tls._reload import Reloadable
from raftmux.tls.alpn import DEFAULT_PROTOCOLS, chooseProtocol, serverProtocols
from raftmux.tls.errors import TLSConfigError
from raftmux.tls.info import TLSInfo
from raftmux.tls.names import allowedNameProblem
from raftmux.tls.reasons import failureText, verifyFailure

__all__ = ["ServerContextFactory", "TLSServerFactory", "serverContextFactory",
           "tlsServerFactory", "tlsOnlyFactory"]


@implementer(IOpenSSLServerConnectionCreator)
class ServerContextFactory(Reloadable):
    """
    Makes the server end of each TLS connection from the current
    ``SSL.Context``; ``reload()`` / ``watch()`` swap the context when the
    files change (see ``Reloadable``).

    @param acceptableProtocols: ALPN tokens in our order of preference;
        the wrapped factory's own tokens (``IProtocolNegotiationFactory``)
        are offered after them.  A client whose ALPN list shares none, or
        that offers none, gets no ALPN answer, and the sniffer inside TLS
        decides by the bytes (pyOpenSSL cannot send RFC 7301's
        ``no_application_protocol`` alert; OpenSSL would send a misleading
        ``internal_error``).
    """

    log = Logger()
    side = "TLS server"

    def __init__(self, tlsInfo: TLSInfo, acceptableProtocols: Iterable[bytes] = DEFAULT_PROTOCOLS,
                 optionalClientCertificates: bool = False) -> None:
        if not tlsInfo.hasCertificate:
            raise TLSConfigError("a TLS server needs %s and %s"
                                 % (tlsInfo.flag("certFile"), tlsInfo.flag("keyFile")))
        self.acceptableProtocols = tuple(acceptableProtocols)
        self.optionalClientCertificates = optionalClientCertificates
        self._refusals: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()
        Reloadable.__init__(self, tlsInfo)

    def _build(self, material):
        context = buildContext(material)
        if self.tlsInfo.clientCertAuth:
            if not material.authorities:
                raise TLSConfigError("%s %s: holds no certificate" % (
                    self.tlsInfo.flag("trustedCAFile"), self.tlsInfo.trustedCAFile))
            context.set_verify(VERIFY_REQUIRE, self._verify)
        elif self.optionalClientCertificates and material.authorities:
            context.set_verify(SSL.VERIFY_PEER, self._verify)
        context.set_alpn_select_callback(self._selectProtocol)
        return context

    @property
    def certificate(self):
        """The ``cryptography`` certificate new connections present."""
        return self.material.certificate

    def serverConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self._context, None)

    def refusal(self, connection):
        """
        ``(reason, aboutCertificate)`` if our callbacks refused ``connection``
        (an ``SSL.Connection``), else ``None``.
        """
        return self._refusals.get(connection)

    def _verify(self, connection, x509, code, depth, ok):
        # Runs inside OpenSSL: never raise, record why, answer.
        try:
            certificate = x509.to_cryptography()
            if not ok:
                problem = verifyFailure(code, certificate, depth, "client")
            elif depth == 0:
                info = self.tlsInfo
                problem = allowedNameProblem(certificate, info.allowedCN, info.allowedHostnames)
            else:
                return True
        except Exception:
            self.log.failure("TLS server: while verifying a client certificate")
            problem = "internal error while verifying the certificate"
        if problem is None:
            return True
        self._refusals.setdefault(connection, (problem, True))
        return False

    def _selectProtocol(self, connection, offered):
        try:
            ours = serverProtocols(self.acceptableProtocols, connection.get_app_data())
            chosen = chooseProtocol(ours, offered)
        except Exception:
            self.log.failure("TLS server: while choosing an ALPN protocol")
            chosen = None
        if chosen is None:
            # No answer rather than a fatal alert: the bytes will decide.
            return SSL.NO_OVERLAPPING_PROTOCOLS
        return chosen


def serverContextFactory(tlsInfo: TLSInfo, acceptableProtocols: Iterable[bytes] = DEFAULT_PROTOCOLS,
                         optionalClientCertificates: bool = False) -> ServerContextFactory:
    """A ``ServerContextFactory`` for ``tlsInfo``; ``TLSConfigError`` if it cannot work."""
    return ServerContextFactory(tlsInfo, acceptableProtocols, optionalClientCertificates)


class _LoggingTLSProtocol(TLSMemoryBIOProtocol):
    """Reports a handshake that ends unfinished to its factory, once."""

    _lossReported = False

    def connectionLost(self, reason=connectionDone):
        if not self._lossReported:
            self._lossReported = True
            if not self._handshakeDone:
                # _reason: the TLS error that ended it (Twisted's documented ivar).
                factory: Any = self.factory
                factory.handshakeFailed(self, self._reason or reason)
        super().connectionLost(reason)


class TLSServerFactory(TLSMemoryBIOFactory):
    """
    ``TLSMemoryBIOFactory`` for a ``ServerContextFactory``: one log line per
    failed handshake (warn when a certificate was at fault, info
    otherwise).  A peer that leaves without a TLS error is not logged.
    """

    log = Logger()
    protocol = _LoggingTLSProtocol

    def __init__(self, contextFactory: ServerContextFactory, wrappedFactory: IProtocolFactory,
                 clock: IReactorTime | None = None) -> None:
        super().__init__(contextFactory, False, wrappedFactory, clock=clock)
        self.contextFactory = contextFactory

    def reload(self) -> bool:
        """Re-read the TLS files (see ``ServerContextFactory.reload``)."""
        return self.contextFactory.reload()

    def handshakeFailed(self, tlsProtocol, reason):
        connection = tlsProtocol.getHandle()
        described = self.contextFactory.refusal(connection) or failureText(reason)
        if described is None:
            return
        detail, aboutCertificate = described
        emit = self.log.warn if aboutCertificate else self.log.info
        emit("TLS handshake with {peer} failed: {reason}", peer=peerOf(connection),
             reason=detail, certificateRefused=aboutCertificate)


def tlsServerFactory(tlsInfo: TLSInfo | ServerContextFactory, innerFactory: IProtocolFactory,
                     acceptableProtocols: Iterable[bytes] = DEFAULT_PROTOCOLS,
                     clock: IReactorTime | None = None,
                     optionalClientCertificates: bool = False) -> TLSServerFactory:
    """
    Terminate TLS for ``innerFactory`` (typically a ``SniffingFactory`` with
    ``alpn={token: factory}`` routes, whose tokens are offered after
    ``acceptableProtocols``).  ``tlsInfo`` is a ``TLSInfo`` or an existing
    ``ServerContextFactory`` (to share one reloadable context between
    ports).  The result's ``reload()`` re-reads the files.
    ``optionalClientCertificates``: ask for (and verify) a client
    certificate without requiring one (see ``ServerContextFactory``).
    """
    if isinstance(tlsInfo, ServerContextFactory):
        contextFactory = tlsInfo
    else:
        contextFactory = ServerContextFactory(tlsInfo, acceptableProtocols,
                                              optionalClientCertificates)
    return TLSServerFactory(contextFactory, innerFactory, clock=clock)


def tlsOnlyFactory(tlsFactory: IProtocolFactory, timeout: float = 10.0, name: str = "tls-only",
                   registry: CollectorRegistry | None = None, clock: IReactorTime | None = None,
                   maxSniffing: int | None = None) -> SniffingFactory:
    """
    A port that speaks only TLS: a ``SniffingFactory`` whose one route is
    ``tls()`` (a well-formed ClientHello) to ``tlsFactory``.  Plaintext,
    garbage and silence are closed by the sniffer (logged and counted with
    the ``name`` label) before OpenSSL sees a byte.
    """
    return SniffingFactory([(tls(), tlsFactory, "tls")], timeout=timeout, name=name,
                           registry=registry, clock=clock, maxSniffing=maxSniffing)
