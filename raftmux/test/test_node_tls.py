# -*- test-case-name: raftmux.test.test_node_tls -*-
"""
A three-member https cluster with mutual TLS on every connection (issue 8):
raft between members rides one muxado session per pair over TLS (ALPN
``raftmux-muxado/1``), clients need a certificate, plaintext and
certificates from another CA are refused with a log line naming the peer
and the reason, and ``reloadTLS`` picks up rotated files.
"""

import io
import json
import os

from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    ResponseFailed,
    ResponseNeverReceived,
    readBody,
)

from raftmux.node.config import ConfigError, NodeConfig
from raftmux.node.dialer import MUXADO, PLAIN
from raftmux.node.testing import makeCluster, startNode, stopNode, urlOf
from raftmux.rafthttp.testing import waitFor
from raftmux.testing.tlsca import CertificateAuthority, writeFiles
from raftmux.tls import ClientPolicy, TLSInfo


def peerFlags(directory, certificate, ca):
    certFile, keyFile = writeFiles(directory, "peer", certificate)
    return {"peer-cert-file": certFile, "peer-key-file": keyFile,
            "peer-trusted-ca-file": ca.writeCAFile(directory),
            "peer-client-cert-auth": True}


class _Collect(Protocol):
    def __init__(self):
        self.data = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.done.callback(self.data)


class HTTPSClusterTests(TestCase):

    timeout = 60

    async def setUp(self):
        self.ca = CertificateAuthority()
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    async def startCluster(self, certificateFor=None):
        ca = self.ca
        certificateFor = certificateFor or (
            lambda i: ca.issue("n%d" % (i + 1,), ipAddresses=["127.0.0.1"], usage="both"))

        def flags(i):
            return peerFlags(os.path.join(self.dir, "tls%d" % (i,)), certificateFor(i), ca)
        self.nodes, self.ports = await makeCluster(reactor, self.dir, 3, scheme="https",
                                                   flags=flags)
        for port in self.ports:
            self.addCleanup(port.stopListening)
        for node, port in zip(self.nodes, self.ports, strict=True):
            await startNode(node, port)
            self.addCleanup(self.stopIfRunning, node)
        clientDir = os.path.join(self.dir, "client")
        client = ca.issue("operator", usage="client")
        certFile, keyFile = writeFiles(clientDir, "client", client)
        self.clientPolicy = ClientPolicy(TLSInfo(certFile=certFile, keyFile=keyFile,
                                                 trustedCAFile=ca.writeCAFile(clientDir)))
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, contextFactory=self.clientPolicy, pool=self.pool)

    def stopIfRunning(self, node):
        if node.running:
            return stopNode(node)

    def url(self, i, path):
        return (urlOf(self.ports[i], "https") + path).encode()

    async def request(self, method, i, path, body=None, agent=None):
        producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
        response = await (agent or self.agent).request(method, self.url(i, path), None,
                                                       producer)
        return response.code, await readBody(response)

    def leader(self, nodes):
        leaders = {n.leader for n in nodes}
        return len(leaders) == 1 and 0 not in leaders

    async def test_mutualTLSClusterEndToEnd(self):
        """
        Writes on each member over https with a client certificate are
        readable on every member; members talk over TLS muxado sessions,
        one per pair, and never in plaintext.
        """
        await self.startCluster()
        await waitFor(reactor, lambda: self.leader(self.nodes), timeout=20, what="leader")
        for i in range(3):
            code, body = await self.request(b"PUT", i, "/kv/t%d" % (i,), b"v%d" % (i,))
            self.assertEqual(code, 200, body)
        for i in range(3):
            for j in range(3):
                self.assertEqual(await self.request(b"GET", i, "/kv/t%d" % (j,)),
                                 (200, b"v%d" % (j,)))
        for node in self.nodes:
            self.assertEqual(len(node.dialer.sessions), 2)
            for address, session in node.dialer.sessions.items():
                self.assertEqual(node.dialer.kinds[address], MUXADO)
                self.assertEqual(node.dialer.dials[(address, PLAIN)], 0)
                self.assertTrue(ISSLTransport.providedBy(session.transport),
                                session.transport)

    async def test_plaintextAndCertificatelessClientsRefused(self):
        """
        Plain HTTP to the https port is closed unanswered; an https client
        without a certificate gets no answer either (peer-client-cert-auth).
        """
        await self.startCluster()
        port = self.ports[0].getHost().port
        collector = _Collect()
        protocol = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port),
                                         collector)
        protocol.transport.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(await collector.done, b"")
        bare = Agent(reactor, contextFactory=ClientPolicy(TLSInfo(
            trustedCAFile=self.ca.writeCAFile(os.path.join(self.dir, "bare")))),
            pool=self.pool)
        try:
            await self.request(b"GET", 0, "/health", agent=bare)
        except (ResponseNeverReceived, ResponseFailed, SSL.Error, ConnectionLost) as e:
            refusal = e
        else:
            self.fail("a client without a certificate got an answer")
        self.assertIsNotNone(refusal)
        lines = [e.get("log_format", "") for e in self.events]
        self.assertTrue(any("TLS handshake" in line or "handshake" in line for line in lines),
                        lines[-20:])

    async def test_memberWithCertificateFromAnotherCARefused(self):
        """
        n3's certificate is signed by an impostor CA with the same name: the
        others refuse its connections (and it theirs) with a log line naming
        the peer and the reason, while n1 and n2 elect and commit.
        """
        ca = self.ca

        def certificateFor(i):
            if i == 2:
                return ca.foreign("n3", ipAddresses=["127.0.0.1"], usage="both")
            return ca.issue("n%d" % (i + 1,), ipAddresses=["127.0.0.1"], usage="both")
        await self.startCluster(certificateFor)
        await waitFor(reactor, lambda: self.leader(self.nodes[:2]), timeout=20,
                      what="n1 and n2 elect")
        code, body = await self.request(b"PUT", 0, "/kv/a", b"1")
        self.assertEqual(code, 200, body)
        self.assertIsNone(self.nodes[2].keySpace.get(b"a"))

        def refused():
            return [e for e in self.events
                    if "handshake" in e.get("log_format", "")
                    and "127.0.0.1" in str(e.get("peer", "")) + str(e)]
        await waitFor(reactor, lambda: refused(), what="a refusal log line")
        text = " ".join(str(e) for e in refused())
        self.assertTrue("CA" in text or "certificate" in text, text[:500])

    async def test_reloadPicksUpRotatedCertificate(self):
        """After the files change, ``reloadTLS`` makes new connections present the new one."""
        await self.startCluster()
        node = self.nodes[0]
        before = [r.certificate for r in node.tlsContexts()]
        fresh = self.ca.issue("n1-rotated", ipAddresses=["127.0.0.1"], usage="both")
        info = node.config.peerTLS
        certFile, keyFile = writeFiles(os.path.dirname(info.certFile), "peer", fresh)
        self.assertEqual((certFile, keyFile), (info.certFile, info.keyFile))
        node.reloadTLS()
        after = [r.certificate for r in node.tlsContexts()]
        self.assertNotEqual(before, after)
        self.assertIn("n1-rotated", str(after[0].subject))


class TLSFlagTests(TestCase):

    def test_httpsWithoutCertificateIsAConfigError(self):
        error = self.assertRaises(ConfigError, NodeConfig, {
            "listen-peer-urls": "https://127.0.0.1:2380"})
        self.assertIn("--listen-peer-urls https://127.0.0.1:2380 needs --peer-cert-file",
                      str(error))

    def test_unreadableFileIsAConfigError(self):
        error = self.assertRaises(ConfigError, NodeConfig, {
            "peer-cert-file": "/nonexistent/peer.crt", "peer-key-file": "/nonexistent/k"})
        self.assertIn("/nonexistent/peer.crt", str(error))

    def test_keyThatDoesNotMatch(self):
        ca = CertificateAuthority()
        directory = self.mktemp()
        certFile, _ = writeFiles(directory, "a", ca.issue("a"))
        _, otherKey = writeFiles(directory, "b", ca.issue("b"))
        error = self.assertRaises(ConfigError, NodeConfig, {
            "cert-file": certFile, "key-file": otherKey,
            "listen-client-urls": "https://127.0.0.1:2379"})
        self.assertIn("match", str(error))

    def test_clientCertAuthNeedsCA(self):
        error = self.assertRaises(ConfigError, NodeConfig, {"peer-client-cert-auth": True})
        self.assertIn("--peer-trusted-ca-file", str(error))

    def test_tacOptionsCarryTheFlags(self):
        from raftmux import tap

        options = tap.Options()
        ca = CertificateAuthority()
        flags = peerFlags(self.mktemp(), ca.issue("n", ipAddresses=["127.0.0.1"],
                                                  usage="both"), ca)
        options.parseOptions([
            "--peer-cert-file", flags["peer-cert-file"],
            "--peer-key-file", flags["peer-key-file"],
            "--peer-trusted-ca-file", flags["peer-trusted-ca-file"],
            "--peer-client-cert-auth",
            "--listen-peer-urls", "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "https://127.0.0.1:2380"])
        config = options["config"]
        self.assertTrue(config.peerTLS.clientCertAuth)
        self.assertIs(config.tlsFor("https://127.0.0.1:2380"), config.peerTLS)
        self.assertIsNone(config.tlsFor("http://127.0.0.1:2379"))
        json.dumps({"ok": True})
