# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
TLS with mutual authentication for every protocol on a raftmux port,
configured with etcd's flags; see ``docs/security.md``.

    from raftmux.tls import TLSInfo, ClientPolicy, tlsServerFactory, tlsOnlyFactory

    info = TLSInfo(certFile=..., keyFile=..., trustedCAFile=..., clientCertAuth=True,
                   role=PEER)
    inner = SniffingFactory([...], alpn={b"http/1.1": site, MUXADO_ALPN: sessions})
    tlsFactory = tlsServerFactory(info, inner)        # .reload() on SIGHUP
    port = tlsOnlyFactory(tlsFactory)                 # plaintext is closed
    agent = Agent(reactor, contextFactory=ClientPolicy(info))
"""

from raftmux.tls.alpn import DEFAULT_PROTOCOLS, H2, HTTP11, MUXADO_ALPN
from raftmux.tls.client import ClientPolicy, clientCreator
from raftmux.tls.errors import TLSConfigError, TLSVerificationError
from raftmux.tls.info import CLIENT, PEER, TLSInfo, checkURLs, optFlags, optParameters
from raftmux.tls.material import Material, loadMaterial
from raftmux.tls.names import peerCertificate
from raftmux.tls.server import (
    ServerContextFactory,
    TLSServerFactory,
    serverContextFactory,
    tlsOnlyFactory,
    tlsServerFactory,
)

__all__ = [
    "CLIENT",
    "DEFAULT_PROTOCOLS",
    "H2",
    "HTTP11",
    "MUXADO_ALPN",
    "PEER",
    "ClientPolicy",
    "Material",
    "ServerContextFactory",
    "TLSConfigError",
    "TLSInfo",
    "TLSServerFactory",
    "TLSVerificationError",
    "checkURLs",
    "clientCreator",
    "loadMaterial",
    "optFlags",
    "optParameters",
    "peerCertificate",
    "serverContextFactory",
    "tlsOnlyFactory",
    "tlsServerFactory",
]
