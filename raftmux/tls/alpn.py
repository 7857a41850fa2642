# -*- test-case-name: raftmux.test.test_tls_alpn -*-
"""
The ALPN tokens a raftmux port offers, and the server's choice among them.

``MUXADO_ALPN`` (``raftmux-muxado/1``) says "a muxado session follows, and
its streams carry raftmux's HTTP/1.1".  muxado itself defines no token, and
none is registered with IANA, so the name is ours: namespaced so it cannot
clash with a registered protocol, versioned so a later change of what the
streams carry can get a new token.  A Go muxado client that offers no ALPN
still works: the sniffer inside TLS recognises muxado by its first frame.
"""

from twisted.internet.interfaces import IProtocolNegotiationFactory

__all__ = ["H2", "HTTP11", "MUXADO_ALPN", "DEFAULT_PROTOCOLS", "chooseProtocol"]

H2 = b"h2"
HTTP11 = b"http/1.1"
MUXADO_ALPN = b"raftmux-muxado/1"

#: What a node's TLS port offers, in the server's order of preference.
DEFAULT_PROTOCOLS = (H2, HTTP11, MUXADO_ALPN)


def serverProtocols(acceptableProtocols, tlsProtocol):
    """
    Our tokens in preference order: ``acceptableProtocols`` first, then any
    the wrapped factory adds (``IProtocolNegotiationFactory``, e.g. a
    ``SniffingFactory``'s ``alpn`` routes).
    """
    ours = list(acceptableProtocols)
    factory = getattr(getattr(tlsProtocol, "factory", None), "wrappedFactory", None)
    negotiation = IProtocolNegotiationFactory(factory, None)
    if negotiation is not None:
        ours += [p for p in negotiation.acceptableProtocols() if p not in ours]
    return ours


def chooseProtocol(ours, offered):
    """
    The first of ``ours`` the client offered (the server's preference, as
    Go's crypto/tls chooses), or ``None`` when nothing overlaps.
    """
    offered = set(offered)
    for token in ours:
        if token in offered:
            return token
    return None
