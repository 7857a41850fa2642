# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
``raftmux.tls`` handshakes, deterministically: both ends in memory
(``iosim`` with ``TLSMemoryBIOFactory`` on each side), no sockets.

Covers mutual TLS that works, every refusal (wrong CA, same-name CA,
expired, no client certificate, a certificate for another role, wrong SAN,
names not allowed) with the one log line each side writes, and bad bytes
(garbage after a ClientHello, plaintext) closing the connection without a
logged error.
"""

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.test.test_sniff import metric
from raftmux.test.test_sniff_matchers import clientHello
from raftmux.testing.tlsca import CertificateAuthority
from raftmux.tls import (
    HTTP11,
    PEER,
    ClientPolicy,
    TLSInfo,
    TLSVerificationError,
    tlsOnlyFactory,
    tlsServerFactory,
)

#: The client as the server sees it, and the server as the client sees it.
CLIENT_ADDRESS = IPv4Address("TCP", "192.0.2.7", 40123)
SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 2380)
CLIENT_AT = "192.0.2.7:40123"
SERVER_AT = "127.0.0.1:2380"
HTTP1_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@implementer(IHandshakeListener)
class App(Protocol):
    """One end's application protocol: records what happens to it."""

    def __init__(self):
        self.received = b""
        self.handshakes = 0
        self.lost = None

    def handshakeCompleted(self):
        self.handshakes += 1

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


class AppFactory(Factory):
    def __init__(self):
        self.built = []

    def buildProtocol(self, addr):
        app = App()
        app.factory = self
        self.built.append(app)
        return app


def tlsLines(events, level=None):
    """The formatted ``raftmux.tls`` log lines among captured ``events``."""
    return [formatEvent(e) for e in events
            if e.get("log_namespace", "").startswith("raftmux.tls")
            and (level is None or e["log_level"] is level)]


class Pair:
    """A server factory and a client creator joined in memory."""

    def __init__(self, serverFactory, creator, clock):
        self.clock = clock
        self.serverApps = AppFactory()
        self.clientApps = AppFactory()
        if getattr(serverFactory, "wrappedFactory", self) is None:
            serverFactory.wrappedFactory = self.serverApps
        clientFactory = TLSMemoryBIOFactory(creator, True, self.clientApps, clock=clock)
        self.server = serverFactory.buildProtocol(CLIENT_ADDRESS)
        self.client = clientFactory.buildProtocol(SERVER_ADDRESS)
        self.pump = iosim.connect(
            self.server, iosim.FakeTransport(self.server, True, peerAddress=CLIENT_ADDRESS),
            self.client, iosim.FakeTransport(self.client, False, peerAddress=SERVER_ADDRESS),
            greet=False, clock=clock)

    def flush(self, rounds=6):
        for _ in range(rounds):
            self.clock.advance(0)
            self.pump.flush()

    @property
    def serverApp(self):
        return self.serverApps.built[0] if self.serverApps.built else None

    @property
    def clientApp(self):
        return self.clientApps.built[0]


class TLSTestCase(SynchronousTestCase):
    """A CA, file-backed ``TLSInfo``s, and in-memory connections between them."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.ca = CertificateAuthority()
        self.names = 0

    def info(self, certificate=None, ca=None, **kwargs):
        """A peer ``TLSInfo`` for ``certificate`` trusting ``ca`` (default: ours)."""
        ca = ca or self.ca
        self.names += 1
        directory = self.mktemp()
        if certificate is None:
            return TLSInfo(trustedCAFile=ca.writeCAFile(directory), role=PEER, **kwargs)
        return ca.tlsInfo(directory, "n%d" % (self.names,), certificate, **kwargs)

    def serverInfo(self, **kwargs):
        kwargs.setdefault("clientCertAuth", True)
        certificate = kwargs.pop("certificate", None) or self.ca.issue(
            "node1", ipAddresses=["127.0.0.1"], usage="both")
        return self.info(certificate, **kwargs)

    def connect(self, serverInfo, clientInfo, host="127.0.0.1", alpn=(HTTP11,),
                inner=None, rounds=6):
        """Handshake (and say hello) between the two; returns (pair, log lines)."""
        serverFactory = tlsServerFactory(serverInfo, inner, clock=self.clock)
        policy = ClientPolicy(clientInfo, alpn)
        with capturedLogs() as events:
            pair = Pair(serverFactory, policy.creatorFor(host), self.clock)
            pair.clientApp.transport.write(b"hello")
            pair.flush(rounds)
        self.assertEqual([e for e in events if "log_failure" in e], [])
        return pair, events

    def assertAccepted(self, pair):
        self.assertEqual(pair.serverApp.received, b"hello")
        self.assertEqual(pair.serverApp.handshakes, 1)
        self.assertIsNone(pair.clientApp.lost)

    def assertRefused(self, pair, events, serverReason, clientReason=None):
        """Nothing reached the server app; one line each side names the peer and the reason."""
        self.assertEqual(pair.serverApp.received, b"")
        self.assertEqual(pair.serverApp.handshakes, 0)
        self.assertIsNotNone(pair.clientApp.lost, "the client's connection was closed")
        lines = tlsLines(events, LogLevel.warn)
        serverLines = [line for line in lines if line.startswith("TLS handshake with")]
        self.assertEqual(serverLines, ["TLS handshake with %s failed: %s"
                                       % (CLIENT_AT, serverReason)])
        if clientReason is not None:
            self.assertEqual([line for line in lines if line not in serverLines],
                             ["TLS: 127.0.0.1 (%s) refused this client: %s"
                              % (SERVER_AT, clientReason)])


class MutualTLSTests(TLSTestCase):
    def test_goodHandshake(self):
        client = self.ca.issue("node2", usage="both")
        pair, events = self.connect(self.serverInfo(), self.info(client))
        self.assertAccepted(pair)
        transport = pair.serverApp.transport
        self.assertEqual(transport.getPeerCertificate().to_cryptography(),
                         client.original.to_cryptography())
        self.assertEqual(transport.negotiatedProtocol, HTTP11)
        pair.serverApp.transport.write(b"welcome")
        pair.flush()
        self.assertEqual(pair.clientApp.received, b"welcome")
        self.assertEqual(tlsLines(events), [])

    def test_wrongCA(self):
        stranger = CertificateAuthority("another CA")
        client = self.info(stranger.issue("node2", client=True))
        client.trustedCAFile = self.serverInfo().trustedCAFile  # it trusts our server
        pair, events = self.connect(self.serverInfo(), client)
        self.assertRefused(pair, events, "CN=node2: unknown CA (issuer not in the trusted CA file)",
                           "it does not trust our client certificate (unknown CA)")

    def test_sameNameOtherCA(self):
        """An impostor CA with our CA's name does not pass either."""
        client = self.info(self.ca.foreign("node2", client=True))
        client.trustedCAFile = self.serverInfo().trustedCAFile
        pair, events = self.connect(self.serverInfo(), client)
        self.assertRefused(pair, events, "CN=node2: unknown CA (issuer not in the trusted CA file)")

    def test_expired(self):
        certificate = self.ca.issue("node2", client=True, expired=True)
        notAfter = certificate.original.to_cryptography().not_valid_after_utc
        pair, events = self.connect(self.serverInfo(), self.info(certificate))
        self.assertRefused(pair, events, "CN=node2: certificate has expired (notAfter %s)"
                           % (notAfter.strftime("%Y-%m-%d %H:%M UTC"),),
                           "it says our client certificate has expired")

    def test_noClientCertificate(self):
        pair, events = self.connect(self.serverInfo(), self.info())
        self.assertRefused(pair, events, "no client certificate",
                           "it requires a client certificate and we sent none")

    def test_certificateForAnotherRole(self):
        """A server-only certificate (no clientAuth usage) presented by a client."""
        serverOnly = self.ca.issue("node2", ipAddresses=["127.0.0.1"], usage="server")
        pair, events = self.connect(self.serverInfo(), self.info(serverOnly))
        self.assertRefused(
            pair, events, "CN=node2: not a client certificate (its extended key usage lacks "
            "clientAuth: a certificate for another role)",
            "our certificate is not allowed for client use (unsupported certificate)")

    def test_allowedCN(self):
        server = self.serverInfo(allowedCN=["node2", "node3"])
        pair, events = self.connect(server, self.info(self.ca.issue("node3", client=True)))
        self.assertAccepted(pair)
        pair, events = self.connect(server, self.info(self.ca.issue("node4", client=True)))
        self.assertRefused(pair, events, "CN=node4 is not an allowed CN (node2, node3)")

    def test_allowedHostnames(self):
        """Allowed hostnames match DNS or IP SANs; a client without one is refused (wrong SAN)."""
        server = self.serverInfo(allowedHostnames=["10.0.0.2", "node2.raft"])
        byIP = self.ca.issue("node2", ipAddresses=["10.0.0.2"], client=True)
        byName = self.ca.issue("x", dnsNames=["node2.raft"], client=True)
        for certificate in [byIP, byName]:
            pair, events = self.connect(server, self.info(certificate))
            self.assertAccepted(pair)
        wrongSAN = self.ca.issue("node2", ipAddresses=["10.0.0.3"], client=True)
        pair, events = self.connect(server, self.info(wrongSAN))
        self.assertRefused(pair, events, "CN=node2 matches none of the allowed hostnames "
                                         "(10.0.0.2, node2.raft)")

    def test_withoutClientCertAuth(self):
        """Without --client-cert-auth a client needs no certificate, and one is not checked."""
        server = self.serverInfo(clientCertAuth=False)
        pair, events = self.connect(server, self.info())
        self.assertAccepted(pair)
        self.assertIsNone(pair.serverApp.transport.getPeerCertificate())
        stranger = self.info(CertificateAuthority().issue("node2", client=True))
        stranger.trustedCAFile = server.trustedCAFile
        pair, events = self.connect(server, stranger)
        self.assertAccepted(pair)
        self.assertEqual(tlsLines(events), [])

    def test_chainThroughAnIntermediate(self):
        """Certificate files may carry their chain; only the root is trusted."""
        intermediate = self.ca.intermediate()
        server = self.info(intermediate.issue("node1", ipAddresses=["127.0.0.1"]),
                           ca=intermediate, clientCertAuth=True)
        client = self.info(intermediate.issue("node2", client=True), ca=intermediate)
        pair, events = self.connect(server, client)
        self.assertAccepted(pair)


class ServerVerificationTests(TLSTestCase):
    """What the client checks: chain, validity, usage and the dialled name."""

    def connectTo(self, serverCertificate, host="127.0.0.1", ca=None):
        server = self.info(serverCertificate, ca=ca)
        pair, events = self.connect(server, self.info(self.ca.issue("node2", client=True)),
                                    host=host)
        return pair, events

    def assertClientRefused(self, pair, events, host, reason):
        self.assertEqual([app.handshakes for app in pair.serverApps.built], [0])
        self.assertEqual(pair.clientApp.handshakes, 0)
        error = pair.clientApp.lost.value
        self.assertIsInstance(error, TLSVerificationError)
        self.assertEqual((error.host, error.reason), (host, reason))
        self.assertEqual(tlsLines(events, LogLevel.warn),
                         ["TLS: certificate of %s (%s) refused: %s" % (host, SERVER_AT, reason)])

    def test_wrongSAN(self):
        """A certificate without an IP SAN for the address we dialled."""
        pair, events = self.connectTo(self.ca.issue("node1", dnsNames=["node1.raft"]))
        self.assertClientRefused(pair, events, "127.0.0.1",
                                 "CN=node1: not valid for IP address 127.0.0.1 (wrong SAN)")

    def test_wrongDNSName(self):
        pair, events = self.connectTo(self.ca.issue("node1", ipAddresses=["127.0.0.1"]),
                                      host="node3.raft")
        self.assertClientRefused(pair, events, "node3.raft",
                                 "CN=node1: not valid for host name node3.raft (wrong SAN)")

    def test_dnsNameAndSNI(self):
        pair, events = self.connectTo(self.ca.issue("node1", dnsNames=["node1.raft"]),
                                      host="node1.raft")
        self.assertAccepted(pair)
        self.assertEqual(pair.server.getHandle().get_servername(), b"node1.raft")

    def test_ipAddressSendsNoSNI(self):
        pair, events = self.connectTo(self.ca.issue("node1", ipAddresses=["127.0.0.1"]))
        self.assertAccepted(pair)
        self.assertIsNone(pair.server.getHandle().get_servername())

    def test_serverFromAnotherCA(self):
        stranger = CertificateAuthority("another CA")
        server = self.info(stranger.issue("node1", ipAddresses=["127.0.0.1"]))
        pair, events = self.connect(server, self.info(self.ca.issue("node2", client=True)))
        self.assertClientRefused(pair, events, "127.0.0.1",
                                 "CN=node1: unknown CA (issuer not in the trusted CA file)")

    def test_expiredServer(self):
        certificate = self.ca.issue("node1", ipAddresses=["127.0.0.1"], expired=True)
        notAfter = certificate.original.to_cryptography().not_valid_after_utc
        pair, events = self.connectTo(certificate)
        self.assertClientRefused(pair, events, "127.0.0.1",
                                 "CN=node1: certificate has expired (notAfter %s)"
                                 % (notAfter.strftime("%Y-%m-%d %H:%M UTC"),))

    def test_clientCertificateAsServer(self):
        pair, events = self.connectTo(self.ca.issue("node1", ipAddresses=["127.0.0.1"],
                                                    client=True))
        self.assertClientRefused(
            pair, events, "127.0.0.1", "CN=node1: not a server certificate (its extended key "
            "usage lacks serverAuth: a certificate for another role)")

    def test_platformTrustWithoutACAFile(self):
        """No --trusted-ca-file: the platform's CAs, which do not know ours."""
        server = self.info(self.ca.issue("node1", ipAddresses=["127.0.0.1"]))
        pair, events = self.connect(server, TLSInfo(role=PEER))
        self.assertEqual(pair.clientApp.lost.value.reason.split(": ")[1].split(" (")[0],
                         "unknown CA")

    def test_creatorForNetloc(self):
        """``IPolicyForHTTPS`` hosts arrive as bytes; IPv6 literals may keep brackets."""
        policy = ClientPolicy(self.info(self.ca.issue("node2", client=True)))
        self.assertEqual(policy.creatorForNetloc(b"127.0.0.1", 2380).host, "127.0.0.1")
        self.assertEqual(policy.creatorForNetloc(b"[::1]", 2380).host, "::1")
        self.assertEqual(policy.creatorForNetloc(b"node1.raft", 2380).acceptableProtocols,
                         [HTTP11])
        self.assertEqual(policy.creatorFor("node1.raft", [b"h2"]).acceptableProtocols, [b"h2"])


class BadBytesTests(TLSTestCase):
    """Bytes that are not a TLS client's close the connection, with no error logged."""

    def feed(self, factory, *chunks):
        """Deliver ``chunks`` to a new server connection; returns (transport, log lines)."""
        protocol = factory.buildProtocol(CLIENT_ADDRESS)
        transport = StringTransport(peerAddress=CLIENT_ADDRESS)
        transport.protocol = protocol
        with capturedLogs() as events:
            protocol.makeConnection(transport)
            for chunk in chunks:
                if transport.disconnecting:
                    break
                transport.protocol.dataReceived(chunk)
            if transport.disconnecting:
                transport.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([e for e in events if "log_failure" in e], [])
        return transport, events

    def test_garbageAfterClientHello(self):
        apps = AppFactory()
        factory = tlsServerFactory(self.serverInfo(), apps, clock=self.clock)
        transport, events = self.feed(factory, clientHello(), b"\x17\x03\x03\x00\x20" + b"\xee" * 32)
        self.assertTrue(transport.disconnecting)
        self.assertEqual([app.handshakes for app in apps.built], [0])
        [line] = tlsLines(events)
        self.assertTrue(line.startswith("TLS handshake with %s failed: " % (CLIENT_AT,)), line)

    def test_plaintextToTheTLSFactory(self):
        """TLS alone closes plaintext too, naming it."""
        factory = tlsServerFactory(self.serverInfo(), AppFactory(), clock=self.clock)
        transport, events = self.feed(factory, HTTP1_REQUEST)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(tlsLines(events), ["TLS handshake with %s failed: plaintext HTTP sent "
                                            "to a TLS port" % (CLIENT_AT,)])

    def test_plaintextToATLSOnlyPort(self):
        """The sniffer in front refuses plaintext before OpenSSL sees it; logged and counted."""
        tlsFactory = tlsServerFactory(self.serverInfo(), AppFactory(), clock=self.clock)
        registry = CollectorRegistry()
        factory = tlsOnlyFactory(tlsFactory, clock=self.clock, registry=registry)
        factory._testRegistry = registry
        transport, events = self.feed(factory, HTTP1_REQUEST)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(metric(factory, "raftmux_sniff_unmatched_total"), 1)
        [line] = [formatEvent(e) for e in events]
        self.assertIn("closing connection from %s: matched no route" % (CLIENT_AT,), line)

    def test_peerLeavesMidHandshake(self):
        """A client that goes away without a TLS error is not a refusal: no line."""
        factory = tlsServerFactory(self.serverInfo(), AppFactory(), clock=self.clock)
        protocol = factory.buildProtocol(CLIENT_ADDRESS)
        with capturedLogs() as events:
            protocol.makeConnection(StringTransport(peerAddress=CLIENT_ADDRESS))
            protocol.dataReceived(clientHello())
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(tlsLines(events), [])

    def test_matcherRoutesOnlyTLS(self):
        """Sanity: the TLS-only port passes a real ClientHello through to TLS."""
        tlsFactory = tlsServerFactory(self.serverInfo(), AppFactory(), clock=self.clock)
        factory = tlsOnlyFactory(tlsFactory, clock=self.clock, registry=CollectorRegistry())
        transport, events = self.feed(factory, clientHello())
        self.assertFalse(transport.disconnecting)
        self.assertTrue(transport.value().startswith(b"\x16\x03"), "a ServerHello came back")
