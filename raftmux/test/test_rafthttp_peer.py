# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
Routing (TestPeerPick), the Transport's peer table (TestTransportSend, Add,
Remove, Update, CutMend), peer status, and the bounded inbox.
"""

from itertools import product

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from raftmux import raftpb
from raftmux.rafthttp import PeerNotFound, Transport, TransportStopped
from raftmux.rafthttp.inbox import Inbox
from raftmux.rafthttp.peer import PIPELINE, STREAM_MESSAGE, STREAM_MSGAPP, pick
from raftmux.rafthttp.testing import FakeRaft
from raftmux.raftpb import Message


class _RecordingAgent:
    def __init__(self):
        self.uris = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.uris.append((method, uri))
        return Deferred()


class PickTests(SynchronousTestCase):
    def test_table(self):
        """etcd's routing table for every writer state (spec 5)."""
        for msgapp, message in product((False, True), repeat=2):
            self.assertEqual(pick(raftpb.MsgSnap, msgapp, message), PIPELINE)
            self.assertEqual(pick(raftpb.MsgApp, msgapp, message),
                             STREAM_MSGAPP if msgapp else
                             STREAM_MESSAGE if message else PIPELINE)
            for t in (raftpb.MsgProp, raftpb.MsgHeartbeat):
                self.assertEqual(pick(t, msgapp, message),
                                 STREAM_MESSAGE if message else PIPELINE)


class TransportTableTests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.agent = _RecordingAgent()
        self.raft = FakeRaft()
        self.t = Transport(1, 0xC1, ["http://me"], self.raft, reactor=self.clock,
                           agent=self.agent, probing=False)

    def posts(self):
        return [u for m, u in self.agent.uris if m == b"POST"]

    def test_send(self):
        """Messages go to the right peer; To=0 and unknown targets are dropped."""
        self.t.addPeer(2, ["http://two"])
        self.t.addPeer(3, ["http://three"])
        self.t.send([Message(type=raftpb.MsgHeartbeat, to=to) for to in (0, 2, 3, 9)])
        self.assertEqual(self.posts(), [b"http://two/raft", b"http://three/raft"])

    def test_cutMend(self):
        self.t.addPeer(2, ["http://two"])
        self.t.cutPeer(2)
        self.t.send([Message(type=raftpb.MsgHeartbeat, to=2)])
        self.assertEqual(self.posts(), [])
        self.t.mendPeer(2)
        self.t.send([Message(type=raftpb.MsgHeartbeat, to=2)])
        self.assertEqual(self.posts(), [b"http://two/raft"])

    def test_addRemoveUpdate(self):
        """Add starts both readers; a duplicate is a no-op; update and remove."""
        self.t.addPeer(2, ["http://two"])
        peer = self.t.peer(2)
        self.t.addPeer(2, ["http://other"])
        self.assertIs(self.t.peer(2), peer)
        self.assertEqual(len([u for m, u in self.agent.uris if m == b"GET"]), 2)
        self.t.updatePeer(2, ["http://new"])
        self.assertEqual(peer.picker.pick(), "http://new")
        self.t.updatePeer(7, ["http://x"])
        self.t.removePeer(2)
        self.assertEqual(self.t.peerIDs(), [])
        self.assertRaises(PeerNotFound, self.t.removePeer, 2)

    def test_remote(self):
        """A remote is pipeline-only; a peer of the same ID takes precedence."""
        self.t.addRemote(5, ["http://five"])
        self.t.send([Message(type=raftpb.MsgAppResp, to=5)])
        self.assertEqual(self.posts(), [b"http://five/raft"])
        self.t.addPeer(2, ["http://two"])
        self.t.addRemote(2, ["http://x"])
        self.assertIsNone(self.t.remote(2))

    def test_activeAndStop(self):
        self.t.addPeer(2, ["http://two"])
        self.t.addPeer(3, ["http://three"])
        self.assertEqual(self.t.activePeers(), 0)
        self.clock.advance(5)
        self.t.peer(2).status.activate()
        self.assertEqual((self.t.activeSince(2), self.t.activeSince(3)), (5, None))
        self.assertEqual(self.t.activePeers(), 1)
        self.assertIsNone(self.t.activeSince(99))
        self.t.stop()
        self.assertRaises(TransportStopped, self.t.addPeer, 4, ["http://four"])

    def test_pause(self):
        self.t.addPeer(2, ["http://two"])
        self.t.pause()
        self.t.send([Message(type=raftpb.MsgHeartbeat, to=2)])
        self.t.resume()
        self.t.send([Message(type=raftpb.MsgHeartbeat, to=2)])
        self.assertEqual(len(self.posts()), 1)


class InboxTests(SynchronousTestCase):
    def test_bounded(self):
        """One message at a time in raft; full at ``size`` waiting; order kept."""
        raft = FakeRaft()
        raft.processResult = first = Deferred()
        inbox = Inbox(raft, size=2)
        self.assertTrue(inbox.put(Message(index=1)))
        raft.processResult = None
        self.assertTrue(inbox.put(Message(index=2)))
        self.assertTrue(inbox.put(Message(index=3)))
        self.assertFalse(inbox.put(Message(index=4)))
        self.assertEqual([m.index for m in raft.messages], [1])
        first.callback(None)
        self.assertEqual([m.index for m in raft.messages], [1, 2, 3])

    def test_errorsLogged(self):
        raft = FakeRaft()
        raft.processResult = RuntimeError("refused")
        inbox = Inbox(raft)
        inbox.put(Message())
        inbox.put(Message())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(len(raft.messages), 2)
