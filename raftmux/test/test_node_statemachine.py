# -*- test-case-name: raftmux.test.test_node_statemachine -*-
"""
``NodeStateMachine`` on a ``MemoryStorage``, synchronously: observers and
waiters hear of each entry in log order with its typed result, refused
conf changes answer their proposer, snapshots are taken every
``snapshotCount`` entries and restored (an etcd member's snapshot keeps
the member table in line with its voters and marks the key space
incomplete), and waits on the applied index fire in order.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from raftmux.etcd.interfaces import IApplyObserver
from raftmux.etcdpb import raft_internal_pb2, rpc_pb2
from raftmux.mvcc.errors import ErrLeaseNotFound, ErrMemberExist, ErrStopped
from raftmux.node import entries
from raftmux.node.members import memberContext
from raftmux.node.state import NodeState
from raftmux.node.statemachine import DuplicateRequestID, NodeStateMachine, Waits
from raftmux.raft.interfaces import IStateMachine
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfState,
    Entry,
    Snapshot,
)


@implementer(IApplyObserver)
class Recorder:
    def __init__(self):
        self.events = []

    def applied(self, request, result):
        self.events.append(("applied", request.header.ID, result))

    def restored(self):
        self.events.append(("restored",))

    def leadershipChanged(self, isLeader):
        self.events.append(("leading", isLeader))


class Peers:
    def __init__(self):
        self.calls = []

    def memberChanged(self, member):
        self.calls.append(("changed", member.id))

    def memberRemoved(self, memberID):
        self.calls.append(("removed", memberID))

    def restored(self, table):
        self.calls.append(("restored", table.ids()))


def put(id, key, value, lease=0):
    r = raft_internal_pb2.InternalRaftRequest(put=rpc_pb2.PutRequest(
        key=key, value=value, lease=lease))
    r.header.ID = id
    return Entry(Term=1, Index=0, Data=r.SerializeToString())


class StateMachineTests(SynchronousTestCase):

    def setUp(self):
        self.storage = MemoryStorage()
        self.peers = Peers()
        self.removed = []
        self.sm = NodeStateMachine(NodeState(), self.storage, self.peers, localID=1,
                                   snapshotCount=5, catchUpEntries=2,
                                   onRemoved=lambda: self.removed.append(True))
        self.recorder = Recorder()
        self.sm.addObserver(self.recorder)
        self.index = 0

    def apply(self, entry):
        self.index += 1
        entry.Index = self.index
        self.storage.append([entry])
        result = self.sm.applyEntry(entry)
        self.sm.appliedTo(self.index)
        return result

    def conf(self, cc):
        self.index += 1
        entry = Entry(Term=1, Index=self.index, Data=cc.SerializeToString())
        self.storage.append([entry])
        if self.sm.validateConfChange(cc, entry):
            self.sm.confChangeApplied(cc, entry, ConfState(voters=[1, 2]))
        self.sm.appliedTo(self.index)

    def test_interface(self):
        self.assertTrue(verifyObject(IStateMachine, self.sm))

    def test_waitersAndObserversInLogOrder(self):
        waiting = self.sm.waits.register(7)
        failing = self.sm.waits.register(8)
        self.apply(put(7, b"a", b"1"))
        index, outcome = self.successResultOf(waiting)
        self.assertEqual((index, outcome.kind), (1, entries.V3))
        self.assertEqual(outcome.result.response.header.revision, 2)
        self.apply(put(8, b"b", b"1", lease=99))
        _, outcome = self.successResultOf(failing)
        self.assertIsInstance(outcome.error, ErrLeaseNotFound)
        self.assertEqual([(e[0], e[1], e[2] is not None) for e in self.recorder.events],
                         [("applied", 7, True), ("applied", 8, False)])
        self.sm.leadershipChanged(True)
        self.assertEqual(self.recorder.events[-1], ("leading", True))

    def test_unknownEntriesAreSkipped(self):
        self.apply(Entry(Data=b"\xff\xfe not etcd's"))
        self.assertEqual(self.sm.unknownEntries, 1)
        self.assertEqual(self.recorder.events, [])
        self.assertEqual(self.sm.state.keySpace.revision, 1)

    def test_confChanges(self):
        added = self.sm.waits.register(50)
        self.conf(ConfChange(type=ConfChangeAddNode, node_id=2, id=50,
                             context=memberContext(2, ["http://b:1"], "b")))
        index, members = self.successResultOf(added)
        self.assertEqual([m.ID for m in members], [2])
        self.assertEqual(self.peers.calls, [("changed", 2)])
        refused = self.sm.waits.register(51)
        self.conf(ConfChange(type=ConfChangeAddNode, node_id=2, id=51,
                             context=memberContext(2, ["http://b:2"])))
        self.failureResultOf(refused, ErrMemberExist)
        self.assertEqual(self.peers.calls, [("changed", 2)])
        self.conf(ConfChange(type=ConfChangeAddNode, node_id=1,
                             context=memberContext(1, ["http://a:1"])))
        self.conf(ConfChange(type=ConfChangeRemoveNode, node_id=1))
        self.assertEqual(self.removed, [True])
        self.assertEqual(self.peers.calls[-1], ("removed", 1))

    def test_snapshotsEveryCountAndRestores(self):
        for i in range(6):
            self.apply(put(100 + i, b"k%d" % i, b"v"))
        self.assertEqual(self.sm.snapshotIndex, 5)
        self.assertEqual(self.storage.firstIndex(), 4)
        snap = self.storage.snapshot()
        other = NodeStateMachine(NodeState(), MemoryStorage(), Peers(), localID=1)
        recorder = Recorder()
        other.addObserver(recorder)
        other.restoreSnapshot(snap)
        self.assertEqual(recorder.events, [("restored",)])
        self.assertEqual(other.applied, 5)
        self.assertEqual(other.state.keySpace.revision, 6)
        self.assertFalse(other.foreignSnapshot)

    def test_etcdSnapshot(self):
        """An etcd leader's snapshot: the table follows its voters, the key space is marked."""
        self.conf(ConfChange(type=ConfChangeAddNode, node_id=1,
                             context=memberContext(1, ["http://a:1"])))
        self.conf(ConfChange(type=ConfChangeAddNode, node_id=3,
                             context=memberContext(3, ["http://c:1"])))
        snap = Snapshot(data=b'{"Root":{"Path":"/"}}')
        snap.metadata.index, snap.metadata.term = 40, 3
        snap.metadata.conf_state.voters.extend([1, 2])
        self.sm.restoreSnapshot(snap)
        self.assertTrue(self.sm.foreignSnapshot)
        self.assertEqual(self.sm.state.members.ids(), [1, 2])
        self.assertEqual(self.peers.calls[-1], ("restored", [1, 2]))
        self.flushLoggedErrors()

    def test_whenApplied(self):
        fired = []
        for index in (3, 1, 2):
            self.sm.whenApplied(index).addCallback(lambda _, i=index: fired.append(i))
        self.assertTrue(self.sm.whenApplied(0).called)
        self.apply(put(1, b"a", b"1"))
        self.assertEqual(fired, [1])
        self.apply(put(2, b"a", b"1"))
        self.apply(put(3, b"a", b"1"))
        self.assertEqual(fired, [1, 2, 3])
        later = self.sm.whenApplied(10)
        pending = self.sm.waits.register(77)
        self.sm.stop(ErrStopped())
        self.failureResultOf(later, ErrStopped)
        self.failureResultOf(pending, ErrStopped)


class WaitsTests(SynchronousTestCase):

    def test_waits(self):
        waits = Waits()
        d = waits.register(1)
        self.assertIn(1, waits)
        self.assertRaises(DuplicateRequestID, waits.register, 1)
        self.assertTrue(waits.trigger(1, "x"))
        self.assertEqual(self.successResultOf(d), "x")
        self.assertFalse(waits.trigger(1, "y"))
        d = waits.register(2)
        waits.cancel(2)
        self.assertEqual(len(waits), 0)
        self.assertNoResult(d)
