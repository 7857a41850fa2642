# -*- test-case-name: raftmux.test.test_rafthttp_metrics -*-
"""
rafthttp's metrics (issue 4, point 6): etcd's ``etcd_network_*`` counters
and RTT histogram, read back from the ``CollectorRegistry`` each Transport
was given, change as two real Transports on 127.0.0.1 send and receive.
"""

import io
import shutil
import socket
import tempfile

from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.server import Site

from raftmux import raftpb
from raftmux.httpbody import BytesProducer
from raftmux.rafthttp import Transport
from raftmux.rafthttp.codec import encodeMessage
from raftmux.rafthttp.headers import requestHeaders
from raftmux.rafthttp.stream import MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft, waitFor
from raftmux.raftpb import Message, encode


def _message(t, to, frm, **kw):
    return Message(type=t, to=to, **dict(kw, **{"from": frm}))


def _closedPort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsTests(TestCase):
    timeout = 30

    async def _node(self, id):
        raft = FakeRaft()
        site = Site(None)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        url = "http://127.0.0.1:%d" % (port.getHost().port,)
        snapdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, snapdir, True)
        registry = CollectorRegistry()
        t = Transport(id, 0xC1, [url], raft, reactor=reactor, registry=registry,
                      snapshotDir=snapdir, probing=False)
        site.resource = t.resource()
        self.addCleanup(t.stop)
        return t, raft, url, registry

    def value(self, registry, name, **labels):
        return registry.get_sample_value(name, labels) or 0.0

    @defer.inlineCallbacks
    def test_countersFollowTraffic(self):
        """
        Sent/received bytes per peer (streams and pipeline), snapshot
        send/receive successes, the RTT histogram, receive failures (a bad
        POST) and send failures (an unreachable peer) all move as they
        should, in the registries the Transports were given.
        """
        a, ra, ua, regA = yield defer.ensureDeferred(self._node(1))
        b, rb, ub, regB = yield defer.ensureDeferred(self._node(2))
        a.addPeer(2, [ub])
        b.addPeer(1, [ua])

        def up():
            return all(t.peer(p).writers[k].working and t.peer(p).readers[k].connected
                       for t, p in ((a, 2), (b, 1)) for k in (MESSAGE, MSGAPP))
        yield defer.ensureDeferred(waitFor(reactor, up, what="all four streams"))

        # The message stream: the sender counts exactly the bytes it wrote,
        # the receiver at least those (link heartbeats come on top).
        sentBefore = self.value(regA, "etcd_network_peer_sent_bytes_total", To="2")
        recvBefore = self.value(regB, "etcd_network_peer_received_bytes_total", From="1")
        vote = _message(raftpb.MsgVote, 2, 1, term=3, logTerm=2, index=9)
        a.send([vote])
        yield rb.waitForMessages(1)
        self.assertEqual(self.value(regA, "etcd_network_peer_sent_bytes_total", To="2"),
                         sentBefore + len(encodeMessage(vote)))
        self.assertGreaterEqual(
            self.value(regB, "etcd_network_peer_received_bytes_total", From="1"),
            recvBefore + len(encodeMessage(vote)))

        # The pipeline (a raw MsgSnap always takes it): counted after the
        # 204 by the sender, on arrival by the receiver, both the body size.
        sentBefore = self.value(regB, "etcd_network_peer_sent_bytes_total", To="1")
        recvBefore = self.value(regA, "etcd_network_peer_received_bytes_total", From="2")
        snap = _message(raftpb.MsgSnap, 1, 2, term=3)
        b.send([snap])
        yield ra.waitForMessages(1)
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: self.value(regB, "etcd_network_peer_sent_bytes_total", To="1")
            == sentBefore + len(encode(snap)), what="the pipeline's sent bytes"))
        self.assertEqual(self.value(regA, "etcd_network_peer_received_bytes_total", From="2"),
                         recvBefore + len(encode(snap)))

        # A snapshot upload: send success on one side, receive success on
        # the other.
        snap = _message(raftpb.MsgSnap, 2, 1, term=3)
        snap.snapshot.metadata.index = 7
        ok = yield a.sendSnapshot(snap, io.BytesIO(b"d" * 5000))
        self.assertTrue(ok)
        self.assertEqual(self.value(regA, "etcd_network_snapshot_send_success_total", To="2"), 1)
        self.assertEqual(
            self.value(regB, "etcd_network_snapshot_receive_success_total", From="1"), 1)

        # The prober's RTT lands in the histogram for that peer.
        rtt = yield a.peer(2).prober.probe()
        self.assertIsNotNone(rtt)
        self.assertEqual(self.value(
            regA, "etcd_network_peer_round_trip_time_seconds_count", To="2"), 1)
        self.assertEqual(self.value(
            regA, "etcd_network_peer_round_trip_time_seconds_sum", To="2"), rtt)

        # A POST that cannot be decoded: a receive failure for its sender.
        headers = requestHeaders(1, 0xC1, [ua])
        response = yield Agent(reactor).request(b"POST", (ub + "/raft").encode(),
                                                Headers(headers), BytesProducer(b"\xff\xff"))
        yield readBody(response)
        self.assertEqual(response.code, 400)
        self.assertEqual(
            self.value(regB, "etcd_network_peer_received_failures_total", From="1"), 1)

        # A peer that cannot be reached: a send failure, and raft is told.
        a.addPeer(3, ["http://127.0.0.1:%d" % (_closedPort(),)])
        a.send([_message(raftpb.MsgHeartbeat, 3, 1, term=3)])
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: self.value(regA, "etcd_network_peer_sent_failures_total", To="3"),
            what="a pipeline send failure"))
        self.assertEqual(self.value(regA, "etcd_network_peer_sent_failures_total", To="3"), 1)
        self.assertIn(3, ra.unreachable)
        self.assertEqual(self.value(regA, "etcd_network_peer_sent_failures_total", To="2"), 0)
