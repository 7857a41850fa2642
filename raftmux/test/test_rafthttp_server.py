# -*- test-case-name: raftmux.test.test_rafthttp_server -*-
"""
The rafthttp Resources driven in memory with treq's StubTreq: etcd's
status codes, bodies and check order (TestServeRaftPrefix,
TestServeRaftStreamPrefix(Bad), spec 1), the stream writer's behaviour on
the wire (heartbeats, batching, newest stream wins), snapshots, probing,
/version and /members.
"""

import json
import os
import shutil
import tempfile

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from raftmux import raftpb
from raftmux.rafthttp import Member, MembersResource, Transport, VersionResource
from raftmux.rafthttp.codec import LINK_HEARTBEAT, MessageDecoder, MsgAppV2Decoder
from raftmux.rafthttp.snapshot_codec import encodeSnapshotHead
from raftmux.rafthttp.stream import HEARTBEAT_INTERVAL, MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft
from raftmux.raftpb import Entry, Message, encode

CID = 0xC1
LOCAL = 1
PEER = 2
URL = "http://peer1"
GOOD = {"X-Server-Version": "3.4.23", "X-Min-Cluster-Version": "3.0.0",
        "X-Etcd-Cluster-ID": "c1", "X-Server-From": "2", "X-PeerURLs": "http://peer2:2380"}


class _NeverAgent:
    """An Agent whose requests never complete (the server tests dial nothing)."""

    def request(self, method, uri, headers=None, bodyProducer=None):
        return Deferred()


class _Collect(Protocol):
    def __init__(self):
        self.data = b""
        self.reason = None

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.reason = reason


def _msg(t, **kw):
    return Message(type=t, to=LOCAL, **dict({"from": PEER}, **kw))


class ResourceTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1700000000)
        self.raft = FakeRaft()
        self.snapdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.snapdir)
        self.removed = []
        self.transport = Transport(LOCAL, CID, [URL], self.raft, reactor=self.clock,
                                   agent=_NeverAgent(), probing=False, snapshotDir=self.snapdir)
        self.transport.addPeer(PEER, ["http://peer2:2380"])
        root = self.transport.resource()
        root.putChild(b"version", VersionResource())
        root.putChild(b"members", MembersResource(CID, lambda: [
            Member(3, ["http://c"], "e1", ["http://c:2379"]), Member(PEER, ["http://b"])]))
        self.stub = StubTreq(root)

    def request(self, method, path, headers=GOOD, data=b""):
        d = self.stub.request(method, "http://local" + path, headers=headers, data=data or None)
        self.stub.flush()
        return d

    def answer(self, method, path, headers=GOOD, data=b""):
        response = self.successResultOf(self.request(method, path, headers, data))
        body = self.successResultOf(self.stub.content(response))
        return response.code, body, response.headers

    def assertError(self, result, code, text):
        self.assertEqual(result[:2], (code, text.encode() + b"\n"))
        self.assertEqual(result[2].getRawHeaders("Content-Type"), ["text/plain; charset=utf-8"])
        self.assertEqual(result[2].getRawHeaders("X-Content-Type-Options"), ["nosniff"])


class PipelineHandlerTests(ResourceTestCase):
    """POST /raft (spec 1.6)."""

    def test_success(self):
        """A Message body is handed to raft and answered 204 once accepted."""
        m = _msg(raftpb.MsgApp, term=2, entries=[Entry(Term=2, Index=3, Data=b"d")])
        code, body, headers = self.answer("POST", "/raft", data=encode(m))
        self.assertEqual((code, body), (204, b""))
        self.assertEqual(headers.getRawHeaders("X-Etcd-Cluster-ID"), ["c1"])
        self.assertEqual([encode(x) for x in self.raft.messages], [encode(m)])

    def test_emptyBody(self):
        """An empty body is a valid MsgHup (204, as etcd does)."""
        self.assertEqual(self.answer("POST", "/raft")[:2], (204, b""))
        self.assertEqual(self.raft.messages[0].type, raftpb.MsgHup)

    def test_waitsForProcess(self):
        """The 204 goes out only when raft's Deferred fires ("delivered")."""
        self.raft.processResult = pending = Deferred()
        d = self.request("POST", "/raft", data=encode(_msg(raftpb.MsgHeartbeat)))
        self.assertNoResult(d)
        pending.callback(None)
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).code, 204)

    def test_methods(self):
        """GET, PUT and DELETE get 405 with Allow: POST."""
        for method in ("GET", "PUT", "DELETE"):
            result = self.answer(method, "/raft")
            self.assertError(result, 405, "Method Not Allowed")
            self.assertEqual(result[2].getRawHeaders("Allow"), ["POST"])

    def test_badProtobuf(self):
        self.assertError(self.answer("POST", "/raft", data=b"\xff\xff\xff"), 400,
                         "error unmarshalling raft message")
        self.assertEqual(self.raft.messages, [])

    def test_clusterMismatch(self):
        headers = dict(GOOD, **{"X-Etcd-Cluster-ID": "c2"})
        self.assertError(self.answer("POST", "/raft", headers, b"x"), 412, "cluster ID mismatch")

    def test_versionBeforeCluster(self):
        """The version check comes first; a missing version reads as 2.0.0."""
        for headers in ({"X-Etcd-Cluster-ID": "c2"},
                        dict(GOOD, **{"X-Server-Version": "2.3.0"}),
                        dict(GOOD, **{"X-Server-Version": "4.0.0",
                                      "X-Min-Cluster-Version": "3.5.0"})):
            self.assertError(self.answer("POST", "/raft", headers), 412, "incompatible version")

    def test_malformedVersionDropsConnection(self):
        """etcd panics on "3.4"; we drop the connection with no response."""
        d = self.request("POST", "/raft", dict(GOOD, **{"X-Server-Version": "3.4"}))
        self.failureResultOf(d)
        self.assertEqual(self.raft.messages, [])

    def test_processError(self):
        """A raft that refuses the message gets 500 and the connection closes."""
        self.raft.processResult = RuntimeError("removed")
        result = self.answer("POST", "/raft", data=encode(_msg(raftpb.MsgApp)))
        self.assertError(result, 500, "error processing raft message")

    def test_addRemote(self):
        """
        An unknown sender's X-Server-From and X-PeerURLs make it a remote
        once it has proved a peer identity (``Transport.authenticate``).
        """
        asked = []

        def authenticate(request):
            asked.append(request.getHeader(b"X-Server-From"))
            return True
        self.transport.authenticate = authenticate
        headers = dict(GOOD, **{"X-Server-From": "9", "X-PeerURLs": "http://nine:1"})
        self.answer("POST", "/raft", headers)
        self.assertEqual(self.transport.remote(9).picker.urls, ["http://nine:1"])
        self.assertEqual(asked, [b"9"])

    def test_noRemoteFromAnonymousSender(self):
        """
        Without a peer identity (by default: no verified client certificate)
        the message is still processed, but its sender is not added as a
        remote: nothing makes this member dial an address a stranger named.
        """
        headers = dict(GOOD, **{"X-Server-From": "9", "X-PeerURLs": "http://evil:1"})
        for path in ("/raft", "/raft/stream/message/9"):
            self.answer("POST" if path == "/raft" else "GET", path, headers)
        self.assertIsNone(self.transport.remote(9))
        self.assertEqual(len(self.raft.messages), 1)

    def test_knownPeerNeedsNoAuthentication(self):
        """A known peer is never re-added: authenticate is not even asked."""
        self.transport.authenticate = lambda request: self.fail("asked")
        self.answer("POST", "/raft", GOOD)
        self.assertIsNone(self.transport.remote(PEER))

    def test_unknownPaths(self):
        """Only the exact paths exist; the rest is Go's 404."""
        for path in ("/raft/", "/raft/foo", "/health", "/", "/raft/snapshot/x"):
            self.assertError(self.answer("POST", path), 404, "404 page not found")


class StreamHandlerTests(ResourceTestCase):
    """GET /raft/stream/... (spec 1.7, 2.3)."""

    headers = dict(GOOD, **{"X-Raft-To": "1"})

    def test_bad(self):
        """Each bad request gets etcd's status and text, in etcd's order."""
        h = self.headers
        cases = [
            ("PUT", "/raft/stream/message/2", h, 405, "Method Not Allowed"),
            ("POST", "/raft/stream/msgapp/2", h, 405, "Method Not Allowed"),
            ("GET", "/raft/stream/message/2", dict(h, **{"X-Etcd-Cluster-ID": "9"}), 412,
             "cluster ID mismatch"),
            ("GET", "/raft/stream/message/2", dict(h, **{"X-Server-Version": "2.0.0"}), 412,
             "incompatible version"),
            ("GET", "/raft/stream/foo/2", h, 404, "invalid path"),
            ("GET", "/raft/stream/message", h, 404, "invalid path"),
            ("GET", "/raft/stream/message/zz", h, 404, "invalid from"),
            ("GET", "/raft/stream/message/7", h, 404, "error sender not found"),
            ("GET", "/raft/stream/message/2", dict(h, **{"X-Raft-To": "3"}), 412,
             "to field mismatch"),
        ]
        for method, path, headers, code, text in cases:
            result = self.answer(method, path, headers)
            self.assertError(result, code, text)
            self.assertEqual(result[2].getRawHeaders("X-Server-Version"),
                             None if code == 405 else ["3.4.23"])

    def test_removed(self):
        """A removed member gets 410 Gone."""
        self.raft.removed.add(PEER)
        self.assertError(self.answer("GET", "/raft/stream/msgapp/2", self.headers), 410,
                         "removed member")

    def open(self, kind):
        response = self.successResultOf(self.request("GET", "/raft/stream/%s/2" % (kind,),
                                                     self.headers))
        body = _Collect()
        response.deliverBody(body)
        return response, body

    def pump(self, seconds=0):
        self.clock.advance(seconds)
        self.stub.flush()

    def test_attachAndSend(self):
        """
        A good dial gets 200 with X-Server-Version and no Content-Type;
        the writer then carries messages, encoded for its stream type.
        """
        peer = self.transport.peer(PEER)
        self.assertFalse(peer.writers[MESSAGE].working)
        response, body = self.open(MESSAGE)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("X-Server-Version"), ["3.4.23"])
        self.assertIsNone(response.headers.getRawHeaders("Content-Type"))
        self.assertTrue(peer.writers[MESSAGE].working)
        self.assertIsNotNone(self.transport.activeSince(PEER))
        vote = Message(type=raftpb.MsgVote, to=PEER, term=2, **{"from": LOCAL})
        self.transport.send([vote, vote])
        self.pump()
        got = MessageDecoder().receiveData(body.data)
        self.assertEqual([encode(m) for m in got], [encode(vote)] * 2)

        _, appBody = self.open(MSGAPP)
        self.assertEqual(peer.channel(Message(type=raftpb.MsgApp)), "stream MsgApp v2")
        apps = [Message(type=raftpb.MsgApp, to=PEER, term=2, logTerm=2, index=i, commit=i,
                        entries=[Entry(Term=2, Index=i + 1, Data=b"e")], **{"from": LOCAL})
                for i in (3, 4)]
        self.transport.send(apps)
        self.pump()
        self.assertEqual(appBody.data[:1], b"\x02")
        got = MsgAppV2Decoder(PEER, LOCAL).receiveData(appBody.data)
        self.assertEqual([encode(m) for m in got], [encode(m) for m in apps])

    def test_linkHeartbeat(self):
        """With nothing to send, a link heartbeat goes out every 5/3 s."""
        _, body = self.open(MESSAGE)
        self.pump(HEARTBEAT_INTERVAL - 0.01)
        self.assertEqual(body.data, b"")
        self.pump(0.01)
        self.assertEqual(body.data, LINK_HEARTBEAT)
        self.pump(HEARTBEAT_INTERVAL)
        self.assertEqual(body.data, LINK_HEARTBEAT * 2)
        _, appBody = self.open(MSGAPP)
        self.pump(HEARTBEAT_INTERVAL)
        self.assertEqual(appBody.data, b"\x00")

    def test_newestWins(self):
        """
        A second dial closes the first stream cleanly (final chunk, so the old
        reader sees a clean EOF) and carries the traffic from then on.
        """
        _, first = self.open(MESSAGE)
        _, second = self.open(MESSAGE)
        self.pump()
        self.assertTrue(first.reason.check(ResponseDone))
        self.assertIsNone(second.reason)
        self.transport.send([Message(type=raftpb.MsgHeartbeat, to=PEER, **{"from": LOCAL})])
        self.pump()
        self.assertEqual(first.data, b"")
        self.assertEqual(len(MessageDecoder().receiveData(second.data)), 1)

    def test_stopEndsStreams(self):
        """Stopping the transport ends the stream and turns the writer off."""
        _, body = self.open(MSGAPP)
        writer = self.transport.peer(PEER).writers[MSGAPP]
        self.transport.stop()
        self.pump()
        self.assertTrue(body.reason.check(ResponseDone))
        self.assertFalse(writer.working)


class SnapshotHandlerTests(ResourceTestCase):
    """POST /raft/snapshot (spec 1.8)."""

    def snap(self, index=7206):
        return _msg(raftpb.MsgSnap, term=2, snapshot=raftpb.Snapshot(
            data=b"store", metadata=raftpb.SnapshotMetadata(index=index, term=2)))

    def test_saved(self):
        """The database is saved as <index>.snap.db and the MsgSnap processed."""
        database = os.urandom(150000)
        body = encodeSnapshotHead(self.snap()) + database
        self.assertEqual(self.answer("POST", "/raft/snapshot", data=body)[:2], (204, b""))
        with open(os.path.join(self.snapdir, "0000000000001c26.snap.db"), "rb") as f:
            self.assertEqual(f.read(), database)
        self.assertEqual(encode(self.raft.messages[0]), encode(self.snap()))

    def test_bad(self):
        """Wrong type, garbage length and a short head: 400, no file left."""
        cases = [
            (encodeSnapshotHead(self.snap())[:20], "failed to decode raft message (snapshot body ended"),
            (b"ABCDEFGHIJ", "failed to decode raft message (rafthttp: error limit exceeded"),
            (b"\x00" * 7 + b"\x02" + b"\x08\x03", "wrong raft message type"),
        ]
        for body, text in cases:
            code, answer, _ = self.answer("POST", "/raft/snapshot", data=body)
            self.assertEqual(code, 400)
            self.assertTrue(answer.decode().startswith(text), answer)
        self.assertEqual(os.listdir(self.snapdir), [])
        self.assertEqual(self.raft.messages, [])

    def test_methodAndProcessError(self):
        self.assertError(self.answer("GET", "/raft/snapshot"), 405, "Method Not Allowed")
        self.raft.processResult = RuntimeError("nope")
        code, answer, _ = self.answer("POST", "/raft/snapshot",
                                      data=encodeSnapshotHead(self.snap()))
        self.assertEqual((code, answer), (500, b"failed to process raft message (nope)\n"))


class PeerHelperTests(ResourceTestCase):
    """/raft/probing, /version and /members."""

    def test_probing(self):
        for method in ("GET", "POST"):
            code, body, headers = self.answer(method, "/raft/probing", headers={})
            self.assertEqual(code, 200)
            self.assertEqual(body, b'{"OK":true,"Now":"2023-11-14T22:13:20Z"}\n')

    def test_version(self):
        self.assertEqual(self.answer("GET", "/version", headers={})[:2],
                         (200, b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}'))
        self.assertError(self.answer("POST", "/version", headers={}), 405, "Method Not Allowed")

    def test_members(self):
        code, body, headers = self.answer("GET", "/members", headers={})
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("X-Etcd-Cluster-ID"), ["c1"])
        self.assertTrue(body.endswith(b"\n"))
        self.assertEqual(json.loads(body), [
            {"id": 2, "peerURLs": ["http://b"]},
            {"id": 3, "peerURLs": ["http://c"], "name": "e1", "clientURLs": ["http://c:2379"]}])
        self.assertError(self.answer("GET", "/members/", headers={}), 404, "404 page not found")
