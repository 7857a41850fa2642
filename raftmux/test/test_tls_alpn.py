# -*- test-case-name: raftmux.test.test_tls_alpn -*-
"""
ALPN through a node-shaped port, in memory: a TLS-only sniffer, then TLS
(``tlsServerFactory``), then a ``SniffingFactory`` with ``alpn`` routes.
A negotiated token picks the route at the end of the handshake, before any
byte; no token (or no shared token) leaves the choice to the bytes.
"""

from prometheus_client import CollectorRegistry

from raftmux.sniff import SniffingFactory, http1, http2, muxado
from raftmux.test.test_sniff import HandshakeRecorder, RecordingFactory
from raftmux.test.test_sniff_matchers import MUXADO_SYN, h2ClientBytes
from raftmux.test.test_tls_handshake import HTTP1_REQUEST, Pair, TLSTestCase
from raftmux.tls import (
    DEFAULT_PROTOCOLS,
    H2,
    HTTP11,
    MUXADO_ALPN,
    ClientPolicy,
    tlsOnlyFactory,
    tlsServerFactory,
)


class ALPNRoutingTests(TLSTestCase):
    def setUp(self):
        TLSTestCase.setUp(self)
        self.h2, self.http1, self.muxado = (RecordingFactory(HandshakeRecorder)
                                            for _ in range(3))
        self.registry = CollectorRegistry()
        self.clientInfo = self.info(self.ca.issue("node2", usage="both"))

    def port(self, alpn, acceptableProtocols=DEFAULT_PROTOCOLS):
        inner = SniffingFactory(
            [(http2(), self.h2), (http1(), self.http1), (muxado(), self.muxado)],
            alpn=alpn, clock=self.clock, registry=self.registry, name="inner")
        tlsFactory = tlsServerFactory(self.serverInfo(), inner,
                                      acceptableProtocols=acceptableProtocols, clock=self.clock)
        return tlsOnlyFactory(tlsFactory, clock=self.clock, registry=self.registry)

    def nodePort(self):
        return self.port({H2: self.h2, HTTP11: self.http1, MUXADO_ALPN: self.muxado})

    def dial(self, port, alpn, data=b""):
        pair = Pair(port, ClientPolicy(self.clientInfo, alpn).creatorFor("127.0.0.1"),
                    self.clock)
        if data:
            pair.clientApp.transport.write(data)
        pair.flush()
        return pair

    def routed(self):
        return {name: len(f.built) for name, f in
                [("h2", self.h2), ("http/1.1", self.http1), ("muxado", self.muxado)]
                if f.built}

    def test_eachTokenToItsRoute(self):
        for token, factory in [(H2, self.h2), (HTTP11, self.http1),
                               (MUXADO_ALPN, self.muxado)]:
            pair = self.dial(self.nodePort(), [token])
            [handed] = factory.built
            self.assertEqual(handed.transport.negotiatedProtocol, token)
            self.assertEqual(pair.clientApp.transport.negotiatedProtocol, token)
            self.assertEqual(handed.data, b"", "routed before any byte")
            self.assertEqual(handed.handshakes, 1)
            factory.built.clear()
        self.assertEqual(self.routed(), {})

    def test_noALPNIsSniffed(self):
        for data, name in [(HTTP1_REQUEST, "http/1.1"), (MUXADO_SYN, "muxado")]:
            pair = self.dial(self.nodePort(), [], data)
            self.assertIsNone(pair.clientApp.transport.negotiatedProtocol)
            self.assertEqual(self.routed(), {name: 1})
            [factory] = [f for f in (self.http1, self.muxado) if f.built]
            self.assertEqual(factory.built[0].data, data)
            factory.built.clear()

    def test_serverPreference(self):
        """curl offers h2 then http/1.1; a Go client may list them the other way round."""
        pair = self.dial(self.nodePort(), [HTTP11, H2])
        self.assertEqual(pair.clientApp.transport.negotiatedProtocol, H2)
        self.assertEqual(self.routed(), {"h2": 1})

    def test_offeredTokenWithoutARouteIsSniffed(self):
        """h2 offered by the port but not routed by ALPN: its bytes decide (gossip vs Site)."""
        port = self.port({HTTP11: self.http1, MUXADO_ALPN: self.muxado})
        pair = self.dial(port, [H2], h2ClientBytes())
        self.assertEqual(pair.clientApp.transport.negotiatedProtocol, H2)
        self.assertEqual(self.routed(), {"h2": 1})
        self.assertEqual(self.h2.built[0].data[:24], h2ClientBytes()[:24])

    def test_routesAddTheirTokens(self):
        """The inner factory's ALPN tokens are offered even when not listed."""
        port = self.port({MUXADO_ALPN: self.muxado}, acceptableProtocols=())
        pair = self.dial(port, [MUXADO_ALPN])
        self.assertEqual(pair.clientApp.transport.negotiatedProtocol, MUXADO_ALPN)
        self.assertEqual(self.routed(), {"muxado": 1})

    def test_noSharedTokenIsSniffed(self):
        """No ALPN answer (not a fatal alert): the bytes decide."""
        pair = self.dial(self.nodePort(), [b"acme-tls/1"], HTTP1_REQUEST)
        self.assertIsNone(pair.clientApp.transport.negotiatedProtocol)
        self.assertEqual(self.routed(), {"http/1.1": 1})
