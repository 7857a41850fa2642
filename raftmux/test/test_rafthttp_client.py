# -*- test-case-name: raftmux.test.test_rafthttp_client -*-
"""
The client side with a fake Agent and a MemoryReactorClock: stream readers
(TestStreamReaderDialRequest/DialResult/StopOnDial/DialDetectUnsupport,
redial every 100 ms, silence, garbage), the pipeline
(TestPipelineSend/KeepSendingWhenPostError/ExceedMaximumServing/Post/PostBad),
the snapshot sender and the prober.
"""

import io

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers

from raftmux import raftpb
from raftmux.rafthttp import SNAPSHOT_FAILURE, SNAPSHOT_FINISH, Transport
from raftmux.rafthttp.codec import LINK_HEARTBEAT, encodeMessage
from raftmux.rafthttp.stream import MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft
from raftmux.raftpb import Message, encode


class FakeBodyTransport:
    def __init__(self, response):
        self.response = response
        self.stopped = False

    def stopProducing(self):
        if not self.stopped:
            self.stopped = True
            self.response.protocol.connectionLost(Failure(ResponseFailed([Failure(
                ConnectionError("closed"))])))

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class FakeResponse:
    def __init__(self, code, headers=None, body=b"", stream=False):
        self.stream = stream
        self.code = code
        self.headers = Headers(headers or {})
        self.body = body
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(FakeBodyTransport(self))
        if not self.stream:
            protocol.dataReceived(self.body)
            protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """Records requests; each gets a Deferred the test fires."""

    def __init__(self):
        self.requests = []
        self.cancelled = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        d = Deferred(lambda d: self.cancelled.append(uri))
        body = []
        if bodyProducer is not None:
            class Consumer:
                write = body.append
            bodyProducer.startProducing(Consumer())
        self.requests.append((method, uri, headers, b"".join(body), d))
        return d

    def pop(self):
        return self.requests.pop(0)


STREAM_OK = {"X-Server-Version": ["3.4.23"]}


class ClientTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.agent = FakeAgent()
        self.raft = FakeRaft()
        self.removed = []
        self.transport = Transport(1, 0xC1, ["http://me:1"], self.raft, reactor=self.clock,
                                   agent=self.agent, probing=False,
                                   onMemberRemoved=self.removed.append)
        self.transport.addPeer(2, ["http://b:2", "http://a:2"])
        self.peer = self.transport.peer(2)
        self.dials = {}
        for _ in range(2):
            method, uri, headers, body, d = self.agent.pop()
            self.dials[uri.split(b"/")[-2].decode()] = (uri, headers, d)

    def connect(self, kind, code=200, headers=STREAM_OK, body=b""):
        response = FakeResponse(code, headers, body, stream=(code == 200))
        self.dials.pop(kind)[2].callback(response)
        return response

    def redial(self, kind):
        method, uri, headers, body, d = self.agent.pop()
        self.assertEqual(method, b"GET")
        self.dials[kind] = (uri, headers, d)


class StreamReaderTests(ClientTestCase):
    def test_dialRequest(self):
        """GET <first sorted URL>/raft/stream/<type>/<our id> with etcd's headers."""
        for kind in (MESSAGE, MSGAPP):
            uri, headers, _ = self.dials[kind]
            self.assertEqual(uri, b"http://a:2/raft/stream/%s/1" % (kind.encode(),))
            for name, value in [("X-Etcd-Cluster-ID", "c1"), ("X-Raft-To", "2"),
                                ("X-Server-From", "1"), ("X-Server-Version", "3.4.23"),
                                ("X-Min-Cluster-Version", "3.0.0"),
                                ("X-PeerURLs", "http://me:1")]:
                self.assertEqual(headers.getRawHeaders(name), [value], name)

    def test_receive(self):
        """Messages reach raft; link heartbeats do not; the peer turns active."""
        response = self.connect(MESSAGE)
        self.assertTrue(self.peer.readers[MESSAGE].connected)
        self.assertIsNotNone(self.transport.activeSince(2))
        m = Message(type=raftpb.MsgHeartbeat, to=1, term=2, **{"from": 2})
        data = LINK_HEARTBEAT + encodeMessage(m)
        response.protocol.dataReceived(data[:7])
        response.protocol.dataReceived(data[7:])
        self.assertEqual([encode(x) for x in self.raft.messages], [encode(m)])

    def test_dialResults(self):
        """
        404, 405 and 412 fail the dial, deactivate and rotate the URL; 410
        also reports the removal; a round-trip error is a failure too.
        """
        self.connect(MESSAGE)
        for code in (404, 405, 412, 410):
            self.connect(MSGAPP, code, body=b"cluster ID mismatch\n")
            self.assertIsNone(self.transport.activeSince(2), code)
            self.clock.advance(0.1)
            self.redial(MSGAPP)
            self.peer.status.activate()
        self.assertEqual(self.removed, [2])
        self.assertEqual(self.peer.picker.pick(), "http://a:2")  # rotated 4 times over 2
        self.dials.pop(MSGAPP)[2].errback(ConnectionRefusedError())
        self.assertIsNone(self.transport.activeSince(2))
        self.assertEqual(self.peer.picker.pick(), "http://b:2")

    def test_redialEvery100ms(self):
        """A failing endpoint is redialled 100 ms after the previous dial, not sooner."""
        self.dials.pop(MESSAGE)[2].errback(ConnectionRefusedError())
        self.clock.advance(0.099)
        self.assertEqual(self.agent.requests, [])
        self.clock.advance(0.001)
        self.assertEqual(len(self.agent.requests), 1)

    def test_unsupported(self):
        """No X-Server-Version (etcd 2.0): unsupported, the peer is not deactivated."""
        self.peer.status.activate()
        self.connect(MSGAPP, 404, headers={})
        self.assertIsNotNone(self.transport.activeSince(2))
        self.assertFalse(self.peer.readers[MSGAPP].connected)

    def test_malformedVersion(self):
        """A response version etcd would panic on is a failed dial here."""
        self.connect(MESSAGE, 200, headers={"X-Server-Version": ["3.4"]})
        self.assertFalse(self.peer.readers[MESSAGE].connected)
        self.clock.advance(0.1)
        self.redial(MESSAGE)

    def test_garbage(self):
        """A bad record closes the stream, deactivates, logs; then a redial."""
        response = self.connect(MSGAPP)
        response.protocol.dataReceived(b"\x07garbage")
        self.assertTrue(response.protocol.transport.stopped)
        self.assertIsNone(self.transport.activeSince(2))
        self.assertFalse(self.peer.readers[MSGAPP].connected)
        self.clock.advance(0.1)
        self.redial(MSGAPP)

    def test_silentStreamDropped(self):
        """A stream silent for 5 s is dropped; data keeps it alive."""
        response = self.connect(MESSAGE)
        self.clock.advance(4)
        response.protocol.dataReceived(LINK_HEARTBEAT)
        self.clock.advance(4.9)
        self.assertFalse(response.protocol.transport.stopped)
        self.clock.advance(0.1)
        self.assertTrue(response.protocol.transport.stopped)
        self.assertIsNone(self.transport.activeSince(2))
        self.redial(MESSAGE)

    def test_cleanEOFKeepsStatus(self):
        """A clean end (a newer stream replaced ours) leaves the peer active."""
        response = self.connect(MESSAGE)
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertIsNotNone(self.transport.activeSince(2))
        self.clock.advance(0.1)
        self.redial(MESSAGE)

    def test_stopOnDial(self):
        """stop() while dialling cancels the dial; nothing is redialled."""
        self.transport.stop()
        self.assertEqual(sorted(self.agent.cancelled),
                         [b"http://a:2/raft/stream/message/1", b"http://a:2/raft/stream/msgapp/1"])
        self.clock.advance(1)
        self.assertEqual(self.agent.requests, [])


class PipelineTests(ClientTestCase):
    def app(self, i=1):
        return Message(type=raftpb.MsgApp, to=2, index=i, **{"from": 1})

    def test_post(self):
        """One POST to <url>/raft with the raw Message and etcd's headers; 204 activates."""
        self.transport.send([self.app()])
        method, uri, headers, body, d = self.agent.pop()
        self.assertEqual((method, uri, body), (b"POST", b"http://a:2/raft", encode(self.app())))
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["application/protobuf"])
        self.assertEqual(headers.getRawHeaders("X-Etcd-Cluster-ID"), ["c1"])
        self.assertEqual(headers.getRawHeaders("X-Raft-To"), None)
        d.callback(FakeResponse(204))
        self.assertIsNotNone(self.transport.activeSince(2))

    def test_exceedMaximumServing(self):
        """4 in flight and 64 waiting; the next is dropped and reported."""
        self.transport.send([self.app(i) for i in range(69)])
        self.assertEqual(len(self.agent.requests), 4)
        self.assertEqual(self.raft.unreachable, [2])
        self.agent.pop()[4].callback(FakeResponse(204))
        self.assertEqual(len(self.agent.requests), 4)
        self.transport.send([self.app(100)])
        self.assertEqual(self.raft.unreachable, [2])

    def test_keepSendingOnError(self):
        """Every one of 50 messages is posted although every POST fails."""
        self.transport.send([self.app(i) for i in range(50)])
        posted = 0
        for _ in range(50):
            self.agent.pop()[4].errback(ConnectionRefusedError())
            posted += 1
        self.assertEqual(posted, 50)
        self.assertEqual(self.agent.requests, [])
        self.assertEqual(len(self.raft.unreachable), 50)

    def test_postBad(self):
        """200, 201 and 500 are errors; 403 also reports the removal."""
        for code in (200, 201, 500, 403):
            self.transport.send([self.app()])
            self.peer.status.activate()
            self.agent.pop()[4].callback(FakeResponse(code))
            self.assertIsNone(self.transport.activeSince(2), code)
        self.assertEqual(self.removed, [2])
        self.assertEqual(len(self.raft.unreachable), 4)

    def test_snapOnPipeline(self):
        """A raw MsgSnap takes the pipeline and reports its outcome."""
        self.connect(MESSAGE)
        snap = Message(type=raftpb.MsgSnap, to=2, **{"from": 1})
        self.transport.send([snap, snap])
        self.agent.pop()[4].callback(FakeResponse(204))
        self.agent.pop()[4].errback(ConnectionRefusedError())
        self.assertEqual(self.raft.snapshots, [(2, SNAPSHOT_FINISH), (2, SNAPSHOT_FAILURE)])

    def test_stop(self):
        """stop() cancels blocked POSTs at once, reporting nothing."""
        self.transport.send([self.app()])
        self.transport.stop()
        self.assertIn(b"http://a:2/raft", self.agent.cancelled)
        self.assertEqual(self.raft.unreachable, [])


class SnapshotSenderTests(ClientTestCase):
    def test_send(self):
        """POST /raft/snapshot: head then database; 204 is FINISH, else FAILURE."""
        snap = Message(type=raftpb.MsgSnap, to=2, snapshot=raftpb.Snapshot(
            metadata=raftpb.SnapshotMetadata(index=5, term=1)), **{"from": 1})
        d = self.transport.sendSnapshot(snap, io.BytesIO(b"db" * 10))
        method, uri, headers, body, pending = self.agent.pop()
        self.assertEqual(uri, b"http://a:2/raft/snapshot")
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["application/octet-stream"])
        self.assertEqual(body, encodeMessage(snap))  # the file comes via the cooperator
        pending.callback(FakeResponse(204))
        self.assertTrue(self.successResultOf(d))
        d = self.transport.sendSnapshot(snap, io.BytesIO(b""))
        self.agent.pop()[4].callback(FakeResponse(500))
        self.assertFalse(self.successResultOf(d))
        self.assertEqual(self.raft.snapshots, [(2, SNAPSHOT_FINISH), (2, SNAPSHOT_FAILURE)])
        self.assertEqual(self.raft.unreachable, [2])
        snap.to = 9
        self.failureResultOf(self.transport.sendSnapshot(snap, io.BytesIO()), KeyError)


class ProberTests(ClientTestCase):
    def test_probe(self):
        """RTT from request to body; the clock difference; failures rotate the URL."""
        prober = self.peer.prober
        self.clock.advance(100)
        d = prober.probe()
        method, uri, headers, body, pending = self.agent.pop()
        self.assertEqual((method, uri), (b"GET", b"http://a:2/raft/probing"))
        self.clock.advance(0.25)
        pending.callback(FakeResponse(200, body=b'{"OK":true,"Now":"1970-01-01T00:01:40Z"}\n'))
        self.assertEqual(self.successResultOf(d), 0.25)
        self.assertEqual(prober.srtt, 0.25)
        self.assertAlmostEqual(prober.clockDifference, 0.25 - 0.125)
        d = prober.probe()
        self.agent.pop()[4].callback(FakeResponse(200, body=b'{"OK":false}'))
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(prober.healthy)
        prober.probe()
        self.assertEqual(self.agent.pop()[1], b"http://b:2/raft/probing")
