# -*- test-case-name: raftmux.test.test_tls_loopback -*-
"""
``raftmux.tls`` on a real loopback port shaped like a node's: a TLS-only
sniffer, TLS with client certificates required, and a sniffer inside with
ALPN routes to a twisted.web Site and to muxado sessions.  Clients: Agent
with ``ClientPolicy``, a muxado session with ``MUXADO_ALPN``, curl with a
client certificate, and bad clients (plaintext, garbage after a ClientHello,
no client certificate).
"""

import os
import shutil

from prometheus_client import CollectorRegistry
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, wrapClientTLS
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.muxado import MuxadoServerFactory, connectSession
from raftmux.sniff import SniffingFactory, http1, http2, muxado
from raftmux.test.test_sniff_loopback import Client, Echo, serverSideClosed
from raftmux.test.test_tls_handshake import HTTP1_REQUEST, clientHello
from raftmux.testing.tlsca import CertificateAuthority
from raftmux.tls import (
    H2,
    HTTP11,
    MUXADO_ALPN,
    PEER,
    ClientPolicy,
    TLSInfo,
    peerCertificate,
    tlsOnlyFactory,
    tlsServerFactory,
)

HOST = "127.0.0.1"


class WhoAmI(Resource):
    """Answers with the protocol and the client certificate's CN the Site saw."""

    isLeaf = True

    def render_GET(self, request):
        certificate = peerCertificate(request)
        cn = certificate.subject.rfc4514_string() if certificate else "-"
        return ("%s %s %s" % (request.clientproto.decode(), request.isSecure(), cn)).encode()


class LogWaiter:
    """Fires Deferreds when a log line containing some text is emitted."""

    def __init__(self, testCase):
        self.lines = []
        self.waiting = []
        globalLogPublisher.addObserver(self)
        testCase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event):
        from twisted.logger import formatEvent

        if not event.get("log_namespace", "").startswith("raftmux."):
            return
        line = formatEvent(event)
        self.lines.append(line)
        for text, d in list(self.waiting):
            if text in line:
                self.waiting.remove((text, d))
                d.callback(line)

    def waitFor(self, text):
        for line in self.lines:
            if text in line:
                return defer.succeed(line)
        d = defer.Deferred()
        self.waiting.append((text, d))
        return d


class NodeShapedPort(TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.ca = CertificateAuthority()
        self.directory = self.mktemp()
        self.serverInfo = self.ca.tlsInfo(
            self.directory, "node1", self.ca.issue("node1", ipAddresses=[HOST], usage="both"),
            clientCertAuth=True)
        self.clientCertificate = self.ca.issue("node2", usage="both")
        self.clientInfo = self.ca.tlsInfo(self.directory, "node2", self.clientCertificate)
        self.site = Site(WhoAmI())
        self.site.log = lambda request: None
        self.serverSessions = []
        sessions = MuxadoServerFactory(protocol.Factory.forProtocol(Echo))
        build = sessions.buildProtocol

        def buildProtocol(addr):
            session = build(addr)
            self.serverSessions.append(session)
            return session

        sessions.buildProtocol = buildProtocol
        self.registry = CollectorRegistry()
        inner = SniffingFactory([(http2(), self.site), (http1(), self.site), (muxado(), sessions)],
                                alpn={H2: self.site, HTTP11: self.site, MUXADO_ALPN: sessions},
                                registry=self.registry, name="inner", timeout=5)
        self.tlsFactory = tlsServerFactory(self.serverInfo, inner)
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(
            tlsOnlyFactory(self.tlsFactory, registry=self.registry, timeout=5))
        self.port = port.getHost().port
        self.addCleanup(serverSideClosed, self.port)
        self.addCleanup(port.stopListening)
        self.url = "https://%s:%d/" % (HOST, self.port)
        self.logs = LogWaiter(self)

    def agent(self, info):
        pool = HTTPConnectionPool(reactor, persistent=False)
        return Agent(reactor, contextFactory=ClientPolicy(info), pool=pool)

    @defer.inlineCallbacks
    def test_agentOverMutualTLS(self):
        response = yield self.agent(self.clientInfo).request(b"GET", self.url.encode())
        body = yield readBody(response)
        self.assertEqual(body, b"HTTP/1.1 True CN=node2")

    @defer.inlineCallbacks
    def test_agentWithoutClientCertificate(self):
        """Refused; the server's line names the client's address and the reason."""
        info = TLSInfo(trustedCAFile=self.serverInfo.trustedCAFile, role=PEER)
        failed = self.agent(info).request(b"GET", self.url.encode())
        yield self.assertFailure(failed, ResponseNeverReceived)
        line = yield self.logs.waitFor("no client certificate")
        self.assertRegex(line, r"^TLS handshake with 127\.0\.0\.1:\d+ failed: "
                               r"no client certificate$")

    @defer.inlineCallbacks
    def test_muxadoSessionOverTLS(self):
        endpoint = wrapClientTLS(ClientPolicy(self.clientInfo).creatorFor(HOST, [MUXADO_ALPN]),
                                 TCP4ClientEndpoint(reactor, HOST, self.port))
        session = yield connectSession(endpoint)
        client = Client(b"ping over muxado over TLS")
        yield session.openStream(client)
        for _ in range(500):
            if client.received == b"ping over muxado over TLS":
                break
            yield deferLater(0.01)
        self.assertEqual(client.received, b"ping over muxado over TLS")
        self.assertEqual(session.transport.negotiatedProtocol, MUXADO_ALPN)
        client.transport.loseConnection()
        session.close()
        session.transport.abortConnection()
        yield session.whenClosed()
        yield defer.gatherResults([s.whenClosed() for s in self.serverSessions])
        self.assertEqual(self.registry.get_sample_value(
            "raftmux_sniff_matched_total",
            {"sniffer": "inner", "route": "alpn-" + MUXADO_ALPN.decode()}), 1)

    @defer.inlineCallbacks
    def test_plaintextIsRefused(self):
        client = Client(HTTP1_REQUEST)
        yield TCP4ClientEndpoint(reactor, HOST, self.port).connect(
            protocol.Factory.forProtocol(lambda: client))
        received = yield client.done
        self.assertEqual(received, b"")
        line = yield self.logs.waitFor("matched no route")
        self.assertRegex(line, r"closing connection from 127\.0\.0\.1:\d+: matched no route")

    @defer.inlineCallbacks
    def test_garbageAfterClientHello(self):
        client = Client(clientHello() + b"\x17\x03\x03\x00\x20" + b"\xee" * 32)
        yield TCP4ClientEndpoint(reactor, HOST, self.port).connect(
            protocol.Factory.forProtocol(lambda: client))
        yield client.done
        line = yield self.logs.waitFor("TLS handshake with")
        self.assertIn("record layer failure", line)
        # The port still serves.
        yield self.test_agentOverMutualTLS()

    @defer.inlineCallbacks
    def test_curlWithAClientCertificate(self):
        curl = shutil.which("curl")
        if curl is None:
            raise SkipTest("curl is not installed")
        args = ("-sS", "--max-time", "10", "--cacert", self.clientInfo.trustedCAFile,
                "--cert", self.clientInfo.certFile, "--key", self.clientInfo.keyFile)
        for version, expected in [("--http1.1", b"HTTP/1.1"), ("--http2", b"HTTP/2")]:
            out, err, code = yield getProcessOutputAndValue(
                curl, args + (version, self.url), env=os.environ)
            self.assertEqual((out, code), (expected + b" True CN=node2", 0), err)
        out, err, code = yield getProcessOutputAndValue(
            curl, ("-sS", "--max-time", "10", "--cacert", self.clientInfo.trustedCAFile,
                   self.url), env=os.environ)
        self.assertNotEqual(code, 0, "no client certificate: refused")


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
