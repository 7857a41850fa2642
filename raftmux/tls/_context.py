"""
One ``SSL.Context`` from ``Material``, with Twisted's ``CertificateOptions``
defaults (TLS 1.2 minimum, its cipher list, no compression, no tickets);
the callers then add their own verify, info and ALPN callbacks before the
context is used (pyOpenSSL freezes a context once a connection uses it).
"""

from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.ssl import CertificateOptions


def buildContext(material):
    kwargs: dict[Any, Any] = {}
    if material.certificate is not None:
        kwargs.update(certificate=material.certificate, privateKey=material.key)
        if material.chain:
            kwargs["extraCertChain"] = list(material.chain)
    context = CertificateOptions(**kwargs).getContext()
    if material.authorities:
        store = context.get_cert_store()
        for authority in material.authorities:
            store.add_cert(crypto.X509.from_cryptography(authority))  # type: ignore[union-attr]
    return context


def connectionOf(tlsProtocol):
    """The ``SSL.Connection`` of a ``TLSMemoryBIOProtocol`` (``None`` once closed)."""
    return tlsProtocol.getHandle()


def peerOf(connection):
    """``host:port`` of the TCP peer behind ``connection`` (an ``SSL.Connection``)."""
    try:
        transport = connection.get_app_data().transport
        peer = transport.getPeer()
    except Exception:
        return "?"
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is None:
        return str(peer)
    if ":" in host:
        host = "[%s]" % (host,)
    return "%s:%s" % (host, port)


VERIFY_REQUIRE = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
