# -*- test-case-name: raftmux.test.test_node_routes -*-
"""
Which protocol each kind of listening URL serves, to whom (issue 18).

Every route (rafthttp's ``POST /raft`` and ``/raft/probing``, ``/members``,
a muxado session's streams, ckit gossip over HTTP/2; the client API over
HTTP/1.1 and HTTP/2, ``/version``) is tried on every kind of port
(client-only, peer-only, shared), plain and TLS, by a caller without a
certificate, with an operator's client certificate (``clientAuth`` only)
and with a member's peer certificate (``serverAuth`` and ``clientAuth``).
Each node is a one-member cluster on loopback; a probe counts as served
when it gets the route's own answer, and as refused when it gets a 404,
a closed connection or a refused handshake.
"""

import os

import h2.config
import h2.connection
import h2.events
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from raftmux.gossip import GossipTransport
from raftmux.httpbody import BytesProducer, readBody
from raftmux.muxado import SessionEndpoint, connectSession
from raftmux.node import NodeConfig, RaftNode
from raftmux.node.listeners import isPeerCertificate, listenerKind, peersAreVerified
from raftmux.node.testing import bindPorts, urlOf
from raftmux.rafthttp.testing import waitFor
from raftmux.raftpb import Message, MsgHeartbeat, MsgHeartbeatResp, encode
from raftmux.testing.tlsca import CertificateAuthority, writeFiles
from raftmux.tls import H2, MUXADO_ALPN, ClientPolicy, TLSInfo

PEER_ROUTES = ("raft", "probing", "members", "muxado", "gossip")
CLIENT_ROUTES = ("health", "version", "kv", "h2-health")
ALL = PEER_ROUTES + CLIENT_ROUTES

# Callers: no certificate, an operator's client certificate, a member's.
ANONYMOUS, OPERATOR, MEMBER = "no certificate", "client certificate", "peer certificate"


class _H2Get(Protocol):
    """One HTTP/2 GET (prior knowledge, or after ALPN h2); fires with the status."""

    def __init__(self, path):
        self.path = path
        self.status = defer.Deferred()
        self.ended = defer.Deferred()
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))

    def connectionMade(self):
        self.conn.initiate_connection()
        self.conn.send_headers(1, [(":method", "GET"), (":path", self.path),
                                   (":scheme", "http"), (":authority", "node")],
                               end_stream=True)
        self.transport.write(self.conn.data_to_send())

    def dataReceived(self, data):
        try:
            events = self.conn.receive_data(data)
        except Exception as e:
            self._done(e)
            return
        self.transport.write(self.conn.data_to_send())
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                self._done(int(dict(event.headers)[b":status"]))

    def _done(self, result):
        if not self.status.called:
            self.status.callback(result)
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.status.called:
            self.status.callback(None)
        self.ended.callback(None)


class RouteCase(TestCase):
    """One-member nodes on ports bound first; callers with and without certificates."""

    timeout = 60

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.ca = CertificateAuthority()
        self.caFile = self.ca.writeCAFile(self.dir)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.policies = {}
        for caller, certificate in [
                (ANONYMOUS, None),
                (OPERATOR, self.ca.issue("operator", usage="client")),
                (MEMBER, self.ca.issue("n2", ipAddresses=["127.0.0.1"], usage="both"))]:
            files = {}
            if certificate is not None:
                certFile, keyFile = writeFiles(os.path.join(self.dir, caller.split()[0]),
                                               "c", certificate)
                files = {"certFile": certFile, "keyFile": keyFile}
            self.policies[caller] = ClientPolicy(TLSInfo(trustedCAFile=self.caFile, **files))

    def tlsFlags(self, peerClientCertAuth):
        certFile, keyFile = writeFiles(os.path.join(self.dir, "server"), "s", self.ca.issue(
            "n1", ipAddresses=["127.0.0.1"], usage="both"))
        flags = {"peer-cert-file": certFile, "peer-key-file": keyFile,
                 "peer-trusted-ca-file": self.caFile, "cert-file": certFile,
                 "key-file": keyFile}
        if peerClientCertAuth:
            flags["peer-client-cert-auth"] = True
        return flags

    async def startNode(self, peer, clients, flags=None):
        """
        ``peer``: the peer URL's scheme, or ``"shared"`` to share the first
        client URL; ``clients``: the client URLs' schemes.  Returns the
        node (leader of its own cluster) and ``{url: port}``.
        """
        count = len(clients) + (0 if peer == "shared" else 1)
        ports = await bindPorts(reactor, count)
        for port in ports:
            self.addCleanup(port.stopListening)
        clientURLs = [urlOf(p, s) for p, s in zip(ports, clients, strict=False)]
        peerURL = clientURLs[0] if peer == "shared" else urlOf(ports[-1], peer)
        config = NodeConfig({
            "name": "n1", "data-dir": os.path.join(self.dir, "n1"),
            "listen-peer-urls": peerURL, "initial-advertise-peer-urls": peerURL,
            "listen-client-urls": ",".join(clientURLs),
            "advertise-client-urls": ",".join(clientURLs)}, **(flags or {}))
        node = RaftNode(config, reactor=reactor, listen=False, fsync=False)
        self.urls = {}
        for url, port in zip(config.listenURLs, [ports[-1]] + ports[:-1]
                             if peer != "shared" else ports, strict=True):
            factory = node.portFactory(url)
            factory.doStart()
            port.lateFactory.target = factory
            self.urls[url] = port.getHost().port
            self.addCleanup(factory.doStop)
        node.startService()
        self.addCleanup(node.stopService)
        await node.whenStarted()
        await waitFor(reactor, lambda: node.isLeader, what="leader")
        self.node = node
        return node

    # -- the probes: True when the route answered as itself ---------------------

    def agent(self, caller):
        return Agent(reactor, contextFactory=self.policies[caller], pool=self.pool)

    async def http(self, url, caller, method, path, body=None, headers=None):
        try:
            d = self.agent(caller).request(method, (url + path).encode(), headers,
                                           BytesProducer(body) if body is not None else None)
            d.addTimeout(10, reactor)
            response = await d
            await readBody(response, 1 << 20)
        except Exception:
            return None
        return response.code

    def raftHeaders(self, sender=9, peerURLs=None):
        headers = Headers({"X-Etcd-Cluster-ID": ["%x" % (self.node.clusterID,)],
                           "X-Server-From": ["%x" % (sender,)],
                           "X-Server-Version": ["3.4.23"], "X-Min-Cluster-Version": ["3.0.0"],
                           "Content-Type": ["application/protobuf"]})
        if peerURLs:
            headers.setRawHeaders("X-PeerURLs", [peerURLs])
        return headers

    def harmless(self, sender=9):
        """A message the node drops (a term-0 response from an unknown member)."""
        m = Message(type=MsgHeartbeatResp, to=self.node.id, term=0)
        setattr(m, "from", sender)
        return encode(m)

    def endpoint(self, url, caller, protocols):
        port = self.urls[url]
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
        if url.startswith("https:"):
            endpoint = wrapClientTLS(self.policies[caller].creatorFor("127.0.0.1", protocols),
                                     endpoint)
        return endpoint

    async def muxado(self, url, caller):
        try:
            session = await connectSession(self.endpoint(url, caller, [MUXADO_ALPN]))
        except Exception:
            return False
        try:
            agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(session))
            d = agent.request(b"GET", b"http://node/version")
            d.addTimeout(10, reactor)
            response = await d
            await readBody(response, 1 << 20)
            return response.code == 200
        except Exception:
            return False
        finally:
            closed = session.whenClosed()
            session.close()
            await closed

    async def h2Health(self, url, caller):
        probe = _H2Get("/health")
        try:
            await connectProtocol(self.endpoint(url, caller, [H2]), probe)
        except Exception:
            return False
        status = await probe.status.addTimeout(10, reactor)
        timer = reactor.callLater(5, probe.transport.abortConnection)
        await probe.ended
        if timer.active():
            timer.cancel()
        return status == 200

    async def gossip(self, url, caller):
        contextFactory = None
        if url.startswith("https:"):
            policy = self.policies[caller]
            contextFactory = lambda host: policy.creatorFor(host, [H2])  # noqa: E731
        from prometheus_client import CollectorRegistry
        registry = CollectorRegistry()
        sender = GossipTransport(reactor, ("127.0.0.1", 1), onPacket=lambda *a: None,
                                 onStream=lambda s: None, contextFactory=contextFactory,
                                 registry=registry)
        before = self.node.gossipPackets
        sender.writeTo(b"hello", "127.0.0.1:%d" % (self.urls[url],))

        def failed():
            return registry.get_sample_value("cluster_transport_tx_packets_failed_total")
        try:
            await waitFor(reactor, lambda: self.node.gossipPackets > before or failed(),
                          timeout=15, what="gossip delivered or failed")
        finally:
            await sender.shutdown()
        return self.node.gossipPackets > before

    async def served(self, url, caller):
        """The routes that answered at ``url`` for ``caller``."""
        found = set()
        if await self.http(url, caller, b"POST", "/raft", self.harmless(),
                           self.raftHeaders()) == 204:
            found.add("raft")
        if await self.http(url, caller, b"GET", "/raft/probing") == 200:
            found.add("probing")
        if await self.http(url, caller, b"GET", "/members") == 200:
            found.add("members")
        if await self.http(url, caller, b"GET", "/health") == 200:
            found.add("health")
        if await self.http(url, caller, b"GET", "/version") == 200:
            found.add("version")
        if await self.http(url, caller, b"PUT", "/kv/route", b"v") == 200:
            found.add("kv")
        if await self.muxado(url, caller):
            found.add("muxado")
        if await self.gossip(url, caller):
            found.add("gossip")
        if await self.h2Health(url, caller):
            found.add("h2-health")
        return found

    async def checkMatrix(self, expected):
        """``expected``: ``{(url, caller): routes}``; every difference is listed."""
        wrong = []
        for (url, caller), routes in expected.items():
            got = await self.served(url, caller)
            if got != set(routes):
                wrong.append("%s (%s) by %s: served %s, expected %s" % (
                    url, listenerKind(self.node.config, url), caller, sorted(got),
                    sorted(routes)))
        self.assertEqual(wrong, [], "\n".join(wrong))


class RouteMatrixTests(RouteCase):

    async def test_plainSeparatePorts(self):
        """
        Plain http: the client port serves no peer protocol; the peer port,
        like etcd's, serves everything to anyone.
        """
        await self.startNode("http", ["http"])
        client, peer = self.node.config.listenClientURLs[0], self.node.config.listenPeerURLs[0]
        await self.checkMatrix({(client, ANONYMOUS): CLIENT_ROUTES, (peer, ANONYMOUS): ALL})

    async def test_plainSharedPort(self):
        """One plain port for both is as open as a plain peer port (etcd's)."""
        await self.startNode("shared", ["http"])
        (url,) = self.node.config.listenURLs
        await self.checkMatrix({(url, ANONYMOUS): ALL})

    async def test_tlsSeparatePorts(self):
        """
        https peers with --peer-client-cert-auth, an https and an http client
        URL: both client ports serve only the client API, whoever calls; the
        peer port refuses a caller without a certificate at the handshake.
        """
        await self.startNode("https", ["https", "http"], self.tlsFlags(True))
        tlsClient, plainClient = self.node.config.listenClientURLs
        peer = self.node.config.listenPeerURLs[0]
        await self.checkMatrix({
            (plainClient, ANONYMOUS): CLIENT_ROUTES,
            (tlsClient, ANONYMOUS): CLIENT_ROUTES,
            (tlsClient, OPERATOR): CLIENT_ROUTES,
            (tlsClient, MEMBER): CLIENT_ROUTES,
            (peer, ANONYMOUS): (),
            (peer, OPERATOR): ALL,
            (peer, MEMBER): ALL,
        })

    async def test_tlsSharedPort(self):
        """
        One https port for both: only a member's peer certificate reaches
        the peer protocols; a client with or without a certificate reaches
        the client API.
        """
        await self.startNode("shared", ["https"], self.tlsFlags(False))
        (url,) = self.node.config.listenURLs
        await self.checkMatrix({
            (url, ANONYMOUS): CLIENT_ROUTES,
            (url, OPERATOR): CLIENT_ROUTES,
            (url, MEMBER): ALL,
        })

    async def test_tlsSharedPortWithClientCertAuth(self):
        """With --peer-client-cert-auth too, a caller needs a certificate at all."""
        await self.startNode("shared", ["https"], self.tlsFlags(True))
        (url,) = self.node.config.listenURLs
        await self.checkMatrix({
            (url, ANONYMOUS): (),
            (url, OPERATOR): CLIENT_ROUTES,
            (url, MEMBER): ALL,
        })


class RemoteRegistrationTests(RouteCase):
    """A remote is never registered from a sender that proved no peer identity."""

    async def test_clientPortCannotDeposeTheLeader(self):
        """
        The issue's story: https peers under --peer-client-cert-auth and a
        plain client URL.  An unauthenticated MsgHeartbeat at term 100 with
        X-PeerURLs, POSTed to the client port, is a 404: the leader stays
        leader at its term and no remote is registered.
        """
        node = await self.startNode("https", ["http"], self.tlsFlags(True))
        term = node.rawNode.raft.term
        attack = Message(type=MsgHeartbeat, to=node.id, term=100)
        setattr(attack, "from", 9)
        client = node.config.listenClientURLs[0]
        code = await self.http(client, ANONYMOUS, b"POST", "/raft", encode(attack),
                               self.raftHeaders(9, "http://127.0.0.1:1"))
        self.assertEqual(code, 404)
        self.assertEqual((node.isLeader, node.rawNode.raft.term), (True, term))
        self.assertIsNone(node.transport.remote(9))

    async def test_plainPeerPortProcessesButRegistersNoRemote(self):
        """On a plain peer port the message is processed, but its X-PeerURLs are not trusted."""
        node = await self.startNode("http", ["http"])
        self.assertFalse(peersAreVerified(node.config))
        peer = node.config.listenPeerURLs[0]
        code = await self.http(peer, ANONYMOUS, b"POST", "/raft", self.harmless(),
                               self.raftHeaders(9, "http://127.0.0.1:1"))
        self.assertEqual(code, 204)
        self.assertIsNone(node.transport.remote(9))

    async def test_memberCertificateRegistersARemote(self):
        """On a shared https port, a member's certificate makes its sender a remote."""
        node = await self.startNode("shared", ["https"], self.tlsFlags(False))
        self.assertTrue(peersAreVerified(node.config))
        (url,) = node.config.listenURLs
        for caller in (ANONYMOUS, OPERATOR):
            code = await self.http(url, caller, b"POST", "/raft", self.harmless(),
                                   self.raftHeaders(9, "https://127.0.0.1:1"))
            self.assertEqual(code, 404)
            self.assertIsNone(node.transport.remote(9))
        code = await self.http(url, MEMBER, b"POST", "/raft", self.harmless(),
                               self.raftHeaders(9, "https://127.0.0.1:1"))
        self.assertEqual(code, 204)
        self.assertEqual(node.transport.remote(9).picker.urls, ["https://127.0.0.1:1"])


class PeerCertificateTests(TestCase):

    def test_serverUsageMakesAPeer(self):
        ca = CertificateAuthority()
        for usage, peer in (("both", True), ("client", False), ("server", True)):
            certificate = ca.issue("x", usage=usage).original.to_cryptography()
            self.assertEqual(isPeerCertificate(certificate), peer, usage)

    def test_sharedHTTPSNeedsThePeerCA(self):
        """A shared https URL without --peer-trusted-ca-file is refused at configuration."""
        from raftmux.node.config import ConfigError
        ca = CertificateAuthority()
        directory = self.mktemp()
        certFile, keyFile = writeFiles(directory, "s", ca.issue("n1", usage="both"))
        url = "https://127.0.0.1:2380"
        error = self.assertRaises(ConfigError, NodeConfig, {
            "listen-peer-urls": url, "initial-advertise-peer-urls": url,
            "listen-client-urls": url, "advertise-client-urls": url,
            "peer-cert-file": certFile, "peer-key-file": keyFile})
        self.assertIn("--peer-trusted-ca-file", str(error))


class SplitPortsClusterTests(TestCase):
    """Three members, each with a client port and a peer port."""

    timeout = 60

    async def test_followersForwardOverPeerURLs(self):
        """
        Raft, sessions and forwarded writes go over the peer URLs; a write on
        a follower's client URL is forwarded to the leader and answered.
        """
        directory = self.mktemp()
        ports = await bindPorts(reactor, 6)
        for port in ports:
            self.addCleanup(port.stopListening)
        peers, clients = ports[:3], ports[3:]
        cluster = ",".join("n%d=%s" % (i + 1, urlOf(p)) for i, p in enumerate(peers))
        nodes = []
        for i in range(3):
            peerURL, clientURL = urlOf(peers[i]), urlOf(clients[i])
            config = NodeConfig({
                "name": "n%d" % (i + 1,), "data-dir": os.path.join(directory, str(i)),
                "listen-peer-urls": peerURL, "initial-advertise-peer-urls": peerURL,
                "listen-client-urls": clientURL, "advertise-client-urls": clientURL,
                "initial-cluster": cluster, "initial-cluster-token": "split"})
            node = RaftNode(config, reactor=reactor, listen=False, fsync=False)
            for url, port in ((peerURL, peers[i]), (clientURL, clients[i])):
                factory = node.portFactory(url)
                factory.doStart()
                port.lateFactory.target = factory
                self.addCleanup(factory.doStop)
            node.startService()
            self.addCleanup(node.stopService)
            nodes.append(node)
        for node in nodes:
            await node.whenStarted()
        await waitFor(reactor, lambda: len({n.leader for n in nodes} - {0}) == 1
                      and all(n.leader for n in nodes), timeout=20, what="a leader")
        follower = [i for i, n in enumerate(nodes) if not n.isLeader][0]
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        response = await agent.request(b"PUT", (urlOf(clients[follower]) + "/kv/f").encode(),
                                       None, BytesProducer(b"forwarded"))
        body = await readBody(response, 1 << 20)
        self.assertEqual(response.code, 200, body)
        await waitFor(reactor, lambda: all(n.keySpace.get(b"f") is not None and n.keySpace.get(b"f").value == b"forwarded" for n in nodes),
                      what="applied everywhere")
        self.assertEqual(nodes[follower].registry.get_sample_value(
            "raftmux_node_forwarded_requests_total"), 1)
        # Between the members: one muxado session per pair, on peer URLs.
        for node in nodes:
            self.assertEqual(sorted(node.dialer.sessions),
                             sorted(("127.0.0.1", p.getHost().port) for j, p in enumerate(peers)
                                    if nodes[j] is not node))


class GossipMembershipTests(RouteCase):
    """
    Joining a member's gossip (memberlist's push/pull over ckit's
    ``/stream``) follows the same rules as the other peer routes: not on a
    client-only port, and on a shared https port only with a member's
    peer certificate.
    """

    async def join(self, url, caller, name):
        """An outsider joins the node's gossip at ``url``: 1, or the ``JoinError``."""
        from raftmux.test.test_node_gossip import _Outsider
        contextFactory = None
        if url.startswith("https:"):
            policy = self.policies[caller]
            contextFactory = lambda host: policy.creatorFor(host, [H2])  # noqa: E731
        return await _Outsider(self, contextFactory, name=name).join(
            "127.0.0.1:%d" % (self.urls[url],))

    def known(self, name):
        return any(r["name"] == name for r in self.node.nodeGossip.view()["members"])

    async def test_clientOnlyPortRefusesGossip(self):
        from raftmux.memberlist.service import JoinError
        await self.startNode("http", ["http"])
        client, peer = self.node.config.listenClientURLs[0], self.node.config.listenPeerURLs[0]
        self.assertIsInstance(await self.join(client, ANONYMOUS, "via-client"), JoinError)
        self.assertEqual(await self.join(peer, ANONYMOUS, "via-peer"), 1)
        await waitFor(reactor, lambda: self.known("via-peer"), what="the outsider known")
        self.assertFalse(self.known("via-client"))

    async def test_tlsGossipNeedsAPeerCertificate(self):
        from raftmux.memberlist.service import JoinError
        await self.startNode("shared", ["https"], self.tlsFlags(False))
        (url,) = self.node.config.listenURLs
        for caller, name in ((ANONYMOUS, "anonymous"), (OPERATOR, "operator")):
            self.assertIsInstance(await self.join(url, caller, name), JoinError, caller)
        self.assertEqual(await self.join(url, MEMBER, "member"), 1)
        await waitFor(reactor, lambda: self.known("member"), what="the member known")
        self.assertFalse(self.known("anonymous") or self.known("operator"))


class GossipRouteTests(TestCase):
    """
    In memory (``StringTransport``; the node on a memory clock): an h2c
    connection with ckit's content type reaches the node's gossip server on
    a peer URL only; on a client-only URL it is the client Site's (which
    knows no ``/api``).  Trial checks nothing is left on the reactor.
    """

    def request(self, node, url):
        """One ckit packet POST on a new connection to ``url``'s factory: (protocol, status)."""
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        stream = client.get_next_available_stream_id()
        client.send_headers(stream, [
            (":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1"),
            (":path", "/api/v1/ckit/transport/message"),
            ("content-type", "application/x.ckit")])
        client.send_data(stream, b"\x00" * 5, end_stream=True)
        factory = node.portFactory(url)
        factory.doStart()
        self.addCleanup(factory.doStop)
        sniffer = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        sniffer.makeConnection(transport)
        sniffer.dataReceived(client.data_to_send())
        proto = sniffer.proto
        events = client.receive_data(transport.value())
        sniffer.connectionLost(Failure(ConnectionDone()))
        statuses = [dict(e.headers)[b":status"] for e in events
                    if isinstance(e, h2.events.ResponseReceived)]
        return proto, statuses

    async def test_ckitOnlyOnPeerURLs(self):
        peer, client = "http://127.0.0.1:2380", "http://127.0.0.1:2379"
        config = NodeConfig({
            "name": "n1", "data-dir": os.path.join(self.mktemp(), "n1"),
            "listen-peer-urls": peer, "initial-advertise-peer-urls": peer,
            "listen-client-urls": client, "advertise-client-urls": client})
        node = RaftNode(config, reactor=MemoryReactorClock(), listen=False, fsync=False)
        gossip = node.gossip.h2Factory()
        proto, statuses = self.request(node, peer)
        # gossip's own answer: the packet is not one of ckit's messages
        self.assertEqual((getattr(proto, "factory", None), statuses), (gossip, [b"400"]))
        proto, statuses = self.request(node, client)
        # the client Site's (not started yet: 503), never the gossip server
        self.assertIsNot(getattr(proto, "factory", None), gossip)
        self.assertIs(getattr(proto, "site", None), node.clientSite)
        self.assertEqual(statuses, [b"503"])
        # twisted.web's HTTP/2 sends from a reactor turn, even once closed
        await deferLater(reactor, 0, lambda: None)
