# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
The client side: ``ClientPolicy`` is twisted.web's ``IPolicyForHTTPS``
(hand it to ``Agent``) and makes connection creators for anything else
(``wrapClientTLS`` for muxado sessions, the gossip transport's client, ``H2Agent``).

Each connection verifies the server's chain against ``trustedCAFile`` (or
the platform's CAs when none is given, as etcd does), its validity and
serverAuth usage (OpenSSL), and its name: an IP SAN when we dialled an
address, a DNS SAN otherwise (``service_identity``); it presents our
certificate when ``TLSInfo`` has one.  A refusal logs one line naming the
host, the address and the reason, and the connection fails with
``TLSVerificationError``.  A server that refuses *us* is logged too, from
its alert; under TLS 1.3 that alert can come after our handshake looked
complete, so only a response proves a peer accepted us.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from OpenSSL import SSL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from raftmux.tls._context import VERIFY_REQUIRE, buildContext, peerOf
from raftmux.tls._reload import Reloadable
from raftmux.tls.alpn import HTTP11
from raftmux.tls.errors import TLSVerificationError
from raftmux.tls.info import TLSInfo
from raftmux.tls.names import serverNameProblem
from raftmux.tls.reasons import alertText, verifyFailure

__all__ = ["ClientPolicy", "clientCreator"]

# What a server's fatal alert tells a client about itself.
_REFUSED_US = {
    116: "it requires a client certificate and we sent none",
    48: "it does not trust our client certificate (unknown CA)",
    42: "it refused our client certificate (bad certificate: wrong name?)",
    43: "our certificate is not allowed for client use (unsupported certificate)",
    45: "it says our client certificate has expired",
    46: "it refused our client certificate",
    120: "it speaks none of our ALPN protocols",
}
_QUIET_ALERTS = (0, 90)  # close_notify, user_canceled


class _Dial:
    """What a client connection is checked against."""

    __slots__ = ("host", "refused")

    def __init__(self, host):
        self.host = host
        self.refused = False


def _hostText(host):
    if isinstance(host, bytes):
        host = host.decode("ascii")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


@implementer(IOpenSSLClientConnectionCreator)
class _ClientCreator:
    """Client ends of TLS connections to one host, from the policy's current context."""

    def __init__(self, policy, host, acceptableProtocols):
        self.policy = policy
        self.host = host
        self.acceptableProtocols = list(acceptableProtocols)
        self._isName = not (isIPAddress(host) or isIPv6Address(host))

    def clientConnectionForTLS(self, tlsProtocol):
        connection = SSL.Connection(self.policy._context, None)
        if self._isName:
            connection.set_tlsext_host_name(self.host.encode("idna"))
        if self.acceptableProtocols:
            connection.set_alpn_protos(self.acceptableProtocols)
        self.policy._dials[connection] = _Dial(self.host)
        return connection

    def __repr__(self):
        return "<TLS client creator for %s, ALPN %r>" % (self.host, self.acceptableProtocols)


@implementer(IPolicyForHTTPS)
class ClientPolicy(Reloadable):
    """
    Client TLS for one role's ``TLSInfo``.

    @param acceptableProtocols: ALPN tokens to offer by default
        (``[b"http/1.1"]`` for rafthttp's Agent; ``[b"h2"]`` for gossip;
        ``[MUXADO_ALPN]`` for a muxado session).
    """

    log = Logger()
    side = "TLS client"

    def __init__(self, tlsInfo: TLSInfo, acceptableProtocols: Iterable[bytes] = (HTTP11,)) -> None:
        self.acceptableProtocols = tuple(acceptableProtocols)
        self._dials: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()
        Reloadable.__init__(self, tlsInfo)

    def _build(self, material):
        context = buildContext(material)
        if not material.authorities:
            context.set_default_verify_paths()
        context.set_verify(VERIFY_REQUIRE, self._verify)
        context.set_info_callback(self._info)
        return context

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """``IPolicyForHTTPS``: the creator for ``https://hostname:port``."""
        return self.creatorFor(hostname)

    def creatorFor(self, host: str | bytes, acceptableProtocols: Iterable[bytes] | None = None,
                   ) -> IOpenSSLClientConnectionCreator:
        """
        An ``IOpenSSLClientConnectionCreator`` for ``host`` (text or bytes;
        an IP address or a DNS name), offering ``acceptableProtocols``
        (default: the policy's).  Also usable as ``GossipTransport``'s
        ``contextFactory`` callable.
        """
        if acceptableProtocols is None:
            acceptableProtocols = self.acceptableProtocols
        return _ClientCreator(self, _hostText(host), acceptableProtocols)

    def _verify(self, connection, x509, code, depth, ok):
        # Runs inside OpenSSL: never raise.
        dial = self._dials.get(connection)
        try:
            certificate = x509.to_cryptography()
            if not ok:
                problem = verifyFailure(code, certificate, depth, "server")
            elif depth == 0 and dial is not None:
                problem = serverNameProblem(certificate, dial.host)
            else:
                return True
        except Exception:
            self.log.failure("TLS client: while verifying a server certificate")
            problem = "internal error while verifying the certificate"
        if problem is None:
            return True
        if dial is not None and not dial.refused:
            dial.refused = True
            self.log.warn("TLS: certificate of {host} ({peer}) refused: {reason}",
                          host=dial.host, peer=peerOf(connection), reason=problem)
            tlsProtocol = connection.get_app_data()
            if tlsProtocol is not None:
                tlsProtocol.failVerification(Failure(TLSVerificationError(dial.host, problem)))
        return False

    def _info(self, connection, where, value):
        if where & SSL.SSL_CB_READ_ALERT != SSL.SSL_CB_READ_ALERT:
            return
        description = value & 0xFF
        if description in _QUIET_ALERTS:
            return
        try:
            dial = self._dials.get(connection)
            if dial is None or dial.refused:
                return
            dial.refused = True
            reason = _REFUSED_US.get(description, "it sent alert " + alertText(description))
            self.log.warn("TLS: {host} ({peer}) refused this client: {reason}",
                          host=dial.host, peer=peerOf(connection), reason=reason,
                          alert=alertText(description))
        except Exception:
            self.log.failure("TLS client: while reading an alert")


def clientCreator(tlsInfo: TLSInfo, hostname: str | bytes,
                  acceptableProtocols: Iterable[bytes] = (HTTP11,),
                  ) -> IOpenSSLClientConnectionCreator:
    """
    A one-off client connection creator for ``hostname`` (for code that
    dials once; long-lived code keeps a ``ClientPolicy`` and its reloads).
    """
    return ClientPolicy(tlsInfo, acceptableProtocols).creatorFor(hostname)
