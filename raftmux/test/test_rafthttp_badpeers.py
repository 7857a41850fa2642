# -*- test-case-name: raftmux.test.test_rafthttp_badpeers -*-
"""
Misbehaving peers on real loopback TCP (issue 4, point 9, and etcd's
``TestStreamWriterAttachBadOutgoingConn``): a stream reader that stops
reading, one that goes away, and a peer whose stream responses are
garbage or announce an oversized message.  Each one costs bounded memory,
is logged and counted, and leaves the other peers' traffic alone.
"""

import struct

from prometheus_client import CollectorRegistry
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from raftmux import raftpb
from raftmux.rafthttp import Transport
from raftmux.rafthttp.stream import CONN_TIMEOUT, MESSAGE, MSGAPP, STREAM_BUF_SIZE
from raftmux.rafthttp.testing import FakeRaft, waitFor
from raftmux.raftpb import Entry, Message, encode


def _message(t, to, frm, **kw):
    return Message(type=t, to=to, **dict(kw, **{"from": frm}))


class _RawStreamClient(protocol.Protocol):
    """A stream GET written by hand; counts what comes back."""

    def __init__(self, path, sender, to):
        self.request = (
            b"GET %s HTTP/1.1\r\nHost: x\r\nX-Server-Version: 3.4.23\r\n"
            b"X-Min-Cluster-Version: 3.0.0\r\nX-Etcd-Cluster-ID: c1\r\n"
            b"X-Server-From: %x\r\nX-Raft-To: %x\r\n\r\n" % (path, sender, to))
        self.received = 0
        self.lost = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.received += len(data)

    def connectionLost(self, reason):
        self.reason = reason
        self.lost.callback(None)


class StalledReaderTests(TestCase):
    """Our stream writers facing readers that stop reading or vanish."""

    timeout = 60

    async def _setUp(self):
        self.raft = FakeRaft()
        self.registry = CollectorRegistry()
        site = Site(None)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        self.transport = Transport(1, 0xC1, ["http://127.0.0.1:%d" % (self.port,)], self.raft,
                                   reactor=reactor, registry=self.registry, probing=False,
                                   dialRetryInterval=1.0)
        site.resource = self.transport.resource()
        self.addCleanup(self.transport.stop)
        # Peers 2 and 3 never answer our own dials (port 9 is discard/closed).
        for id in (2, 3):
            self.transport.addPeer(id, ["http://127.0.0.1:9"])

    async def _dial(self, sender):
        client = _RawStreamClient(b"/raft/stream/message/%x" % (sender,), sender, 1)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(
            protocol.Factory.forProtocol(lambda: client))
        self.addCleanup(lambda: client.transport.abortConnection()
                        if client.transport.connected else None)
        writer = self.transport.peer(sender).writers[MESSAGE]
        await waitFor(reactor, lambda: writer.working, what="writer %d attached" % (sender,))
        return client, writer

    @defer.inlineCallbacks
    def test_readerStopsReading(self):
        """
        A reader that stops reading pauses the writer (push producer); its
        queue stays at 4096 messages, the rest are dropped and reported
        unreachable; after 5 s paused the connection is aborted and the peer
        goes inactive.  Peer 3's stream carries traffic the whole time.
        """
        yield defer.ensureDeferred(self._setUp())
        stalled, writer = yield defer.ensureDeferred(self._dial(2))
        healthy, _ = yield defer.ensureDeferred(self._dial(3))
        stalled.transport.pauseProducing()
        big = _message(raftpb.MsgApp, 2, 1, term=1, entries=[Entry(Data=b"x" * 65536)])
        for _ in range(2000):  # bounded: at most 2000 * 1 MiB offered
            if writer._conn is None or writer._conn.paused:
                break
            self.transport.send([big] * 16)
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(writer._conn.paused, "the writer never saw back-pressure")
        pausedAt = reactor.seconds()

        small = _message(raftpb.MsgHeartbeat, 2, 1, term=1)
        self.transport.send([small] * (STREAM_BUF_SIZE + 10))
        self.assertEqual(len(writer._queue), STREAM_BUF_SIZE)
        self.assertIn(2, self.raft.unreachable)
        self.assertGreaterEqual(self.registry.get_sample_value(
            "raftmux_rafthttp_dropped_messages_total", {"Peer": "2", "Direction": "out"}), 10)

        before = healthy.received
        self.transport.send([_message(raftpb.MsgHeartbeat, 3, 1, term=1)])
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: healthy.received > before, what="peer 3's message"))

        yield defer.ensureDeferred(waitFor(
            reactor, lambda: not writer.working, timeout=CONN_TIMEOUT + 40,
            what="the stalled stream to be aborted"))
        self.assertGreaterEqual(reactor.seconds() - pausedAt, CONN_TIMEOUT - 0.5)
        self.assertEqual(len(writer._queue), 0)
        self.assertIsNone(self.transport.activeSince(2))
        # A paused transport does not read, so it sees the abort only now.
        stalled.transport.resumeProducing()
        yield stalled.lost.addTimeout(10, reactor)
        self.assertTrue(self.transport.peer(3).writers[MESSAGE].working)

    @defer.inlineCallbacks
    def test_readerGoesAway(self):
        """
        etcd's TestStreamWriterAttachBadOutgoingConn: when the reader's
        connection breaks, the writer stops working, the peer goes inactive
        and later messages take the pipeline.
        """
        yield defer.ensureDeferred(self._setUp())
        client, writer = yield defer.ensureDeferred(self._dial(2))
        peer = self.transport.peer(2)
        self.assertEqual(peer.channel(_message(raftpb.MsgVote, 2, 1)), "stream Message")
        client.transport.abortConnection()
        yield defer.ensureDeferred(waitFor(reactor, lambda: not writer.working,
                                           what="the writer to notice"))
        self.assertIsNone(self.transport.activeSince(2))
        self.assertEqual(peer.channel(_message(raftpb.MsgVote, 2, 1)), "pipeline")


class _HostileStream(Resource):
    """Answers every stream dial with 200 and then ``body``."""

    isLeaf = True

    def __init__(self, body):
        Resource.__init__(self)
        self.body = body
        self.dials = 0

    def render_GET(self, request):
        self.dials += 1
        request.setHeader(b"X-Server-Version", b"3.4.23")
        request.setHeader(b"X-Etcd-Cluster-ID", b"c1")
        request.write(self.body)
        # Keep the response open: the reader must end it itself.
        return NOT_DONE_YET


class HostilePeerTests(TestCase):
    timeout = 30

    async def _listen(self, resource):
        site = Site(resource)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        return "http://127.0.0.1:%d" % (port.getHost().port,)

    @defer.inlineCallbacks
    def test_garbageAndOversizedStreams(self):
        """
        Peer 2 answers our message stream with a length prefix of 2^40 (over
        our limit) and our msgapp stream with an unknown record type.  Each
        stream is closed at once (nothing of the 1 TiB is buffered), counted
        as a receive failure and redialled; peer 3, a real Transport, keeps
        exchanging messages with us meanwhile.
        """
        hostileMessage = _HostileStream(struct.pack(">Q", 1 << 40) + b"\x08")
        hostileApp = _HostileStream(b"\x07garbage")
        root = Resource()
        stream = Resource()
        root.putChild(b"raft", Resource())
        root.children[b"raft"].putChild(b"stream", stream)
        stream.putChild(b"message", hostileMessage)
        stream.putChild(b"msgapp", hostileApp)
        hostileURL = yield defer.ensureDeferred(self._listen(root))

        nodes = {}
        for id in (1, 3):
            raft, registry = FakeRaft(), CollectorRegistry()
            site = Site(None)
            port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
            self.addCleanup(port.stopListening)
            url = "http://127.0.0.1:%d" % (port.getHost().port,)
            t = Transport(id, 0xC1, [url], raft, reactor=reactor, registry=registry,
                          probing=False, maxMessageSize=1 << 20)
            site.resource = t.resource()
            self.addCleanup(t.stop)
            nodes[id] = (t, raft, url, registry)
        us, ourRaft, ourURL, registry = nodes[1]
        other, otherRaft, otherURL, _ = nodes[3]
        us.addPeer(2, [hostileURL])
        us.addPeer(3, [otherURL])
        other.addPeer(1, [ourURL])

        yield defer.ensureDeferred(waitFor(
            reactor, lambda: hostileMessage.dials >= 3 and hostileApp.dials >= 3,
            what="redials after each bad stream"))
        failures = registry.get_sample_value("etcd_network_peer_received_failures_total",
                                             {"From": "2"})
        self.assertGreaterEqual(failures, 4)
        for kind in (MESSAGE, MSGAPP):
            reader = us.peer(2).readers[kind]
            if reader._body is not None:
                self.assertLessEqual(reader._body.decoder.bufferedBytes, 1 << 20)

        def up():
            return all(us.peer(3).readers[k].connected and other.peer(1).readers[k].connected
                       for k in (MESSAGE, MSGAPP))
        yield defer.ensureDeferred(waitFor(reactor, up, what="peer 3's streams"))
        us.send([_message(raftpb.MsgHeartbeat, 3, 1, term=2, commit=1)])
        other.send([_message(raftpb.MsgHeartbeatResp, 1, 3, term=2)])
        yield otherRaft.waitForMessages(1)
        yield ourRaft.waitForMessages(1)
        self.assertEqual(encode(otherRaft.messages[0]),
                         encode(_message(raftpb.MsgHeartbeat, 3, 1, term=2, commit=1)))
        self.assertEqual([m.type for m in ourRaft.messages], [raftpb.MsgHeartbeatResp])
