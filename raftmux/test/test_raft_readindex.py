# -*- test-case-name: raftmux.test.test_raft_readindex -*-
"""
Linearizable reads: ReadIndex in safe mode (heartbeat quorum carrying the
request's context) and lease-based mode (etcd raft_test.go's ReadOnly
scenarios).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.core import Raft, StateLeader
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.readonly import ReadOnlyLeaseBased, ReadState
from raftmux.raftpb import (
    Entry,
    HardState,
    MsgApp,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgProp,
    MsgReadIndex,
    MsgReadIndexResp,
)
from raftmux.test.test_raft_core import setRandomizedElectionTimeout
from raftmux.test.test_raft_network import (
    Network,
    hup,
    msg,
    newTestConfig,
    newTestLearnerRaft,
    newTestRaft,
)


def readIndex(id, ctx):
    return msg(MsgReadIndex, frm=id, to=id, entries=[ctx])


def emptyProp():
    return msg(MsgProp, frm=1, to=1, entries=[Entry()])


class ReadIndexTests(SynchronousTestCase):
    def _readOnly(self, **kw):
        a, b, c = (newTestRaft(i, [1, 2, 3], **kw) for i in (1, 2, 3))
        nt = Network(a, b, c)
        setRandomizedElectionTimeout(b, b.electionTimeout + 1)
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(1))
        self.assertEqual(a.state, StateLeader)
        cases = [(a, 10, 11, b"ctx1"), (b, 10, 21, b"ctx2"), (c, 10, 31, b"ctx3"),
                 (a, 10, 41, b"ctx4"), (b, 10, 51, b"ctx5"), (c, 10, 61, b"ctx6")]
        for sm, proposals, wri, wctx in cases:
            for _ in range(proposals):
                nt.send(emptyProp())
            nt.send(readIndex(sm.id, wctx))
            self.assertEqual(sm.readStates[:1], [ReadState(wri, wctx)], sm.id)
            sm.readStates = []

    def test_readOnlyOptionSafe(self):
        self._readOnly()

    def test_readOnlyOptionLease(self):
        self._readOnly(readOnlyOption=ReadOnlyLeaseBased, checkQuorum=True)

    def test_safeReadWaitsForHeartbeatQuorum(self):
        """In safe mode the read is answered only once a quorum echoed its context."""
        r = newTestRaft(1, [1, 2, 3])
        r.becomeCandidate()
        r.becomeLeader()
        r.raftLog.commitTo(r.raftLog.lastIndex())
        r.readMessages()
        r.step(readIndex(1, b"ctx"))
        msgs = r.readMessages()
        self.assertEqual(sorted((m.type, m.to, m.context) for m in msgs),
                         [(MsgHeartbeat, 2, b"ctx"), (MsgHeartbeat, 3, b"ctx")])
        self.assertEqual(r.readStates, [])
        resp = msg(MsgHeartbeatResp, frm=2, to=1, term=r.term)
        resp.context = b"other"
        r.step(resp)
        self.assertEqual(r.readStates, [])
        resp.context = b"ctx"
        r.step(resp)
        self.assertEqual(r.readStates, [ReadState(1, b"ctx")])

    def test_readOnlyWithLearner(self):
        a = newTestLearnerRaft(1, [1], [2])
        b = newTestLearnerRaft(2, [1], [2])
        nt = Network(a, b)
        setRandomizedElectionTimeout(b, b.electionTimeout + 1)
        for _ in range(b.electionTimeout):
            b.tick()
        nt.send(hup(1))
        self.assertEqual(a.state, StateLeader)
        cases = [(a, 10, 11, b"ctx1"), (b, 10, 21, b"ctx2"),
                 (a, 10, 31, b"ctx3"), (b, 10, 41, b"ctx4")]
        for sm, proposals, wri, wctx in cases:
            for _ in range(proposals):
                nt.send(emptyProp())
            nt.send(readIndex(sm.id, wctx))
            self.assertEqual(sm.readStates[:1], [ReadState(wri, wctx)], sm.id)
            sm.readStates = []

    def test_readOnlyForNewLeader(self):
        peers = []
        for id, committed, applied, compact in [(1, 1, 1, 0), (2, 2, 2, 2), (3, 2, 2, 2)]:
            s = MemoryStorage()
            s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=1)])
            s.setHardState(HardState(term=1, commit=committed))
            if compact:
                s.compact(compact)
            peers.append(Raft(newTestConfig(id, [1, 2, 3], 10, 1, s, applied=applied)))
        nt = Network(*peers)
        # Keep 1 from committing an entry of its own term once elected.
        nt.ignore(MsgApp)
        nt.send(hup(1))
        sm = nt.peers[1]
        self.assertEqual(sm.state, StateLeader)
        # Nothing of its term committed: the read is dropped.
        nt.send(readIndex(1, b"ctx"))
        self.assertEqual(sm.readStates, [])
        nt.recover()
        for _ in range(sm.heartbeatTimeout):
            sm.tick()
        nt.send(emptyProp())
        self.assertEqual(sm.raftLog.committed, 4)
        self.assertEqual(sm.raftLog.zeroTermOnError(sm.raftLog.committed), sm.term)
        nt.send(readIndex(1, b"ctx"))
        self.assertEqual(sm.readStates, [ReadState(4, b"ctx")])

    def test_raftFreesReadOnlyMem(self):
        sm = newTestRaft(1, [1, 2], 5, 1)
        sm.becomeCandidate()
        sm.becomeLeader()
        sm.raftLog.commitTo(sm.raftLog.lastIndex())
        ctx = b"ctx"
        sm.step(msg(MsgReadIndex, frm=2, entries=[ctx]))
        msgs = sm.readMessages()
        self.assertEqual([(m.type, m.context) for m in msgs], [(MsgHeartbeat, ctx)])
        self.assertEqual(sm.readOnly.readIndexQueue, [ctx])
        self.assertEqual(list(sm.readOnly.pendingReadIndex), [ctx])
        sm.step(msg(MsgHeartbeatResp, frm=2, context=ctx))
        self.assertEqual(sm.readOnly.readIndexQueue, [])
        self.assertEqual(sm.readOnly.pendingReadIndex, {})
        # The read came from 2: it is answered with MsgReadIndexResp.
        # (besides the entries 2 lacks, which its heartbeat reply asked for)
        [resp] = [m for m in sm.readMessages() if m.type == MsgReadIndexResp]
        self.assertEqual((resp.type, resp.to, resp.index, resp.entries[0].Data),
                         (MsgReadIndexResp, 2, 1, ctx))

    def test_followerForwardsReadIndexAndTakesResponse(self):
        r = newTestRaft(2, [1, 2, 3])
        r.step(readIndex(2, b"x"))
        self.assertEqual(r.readMessages(), [])  # no leader yet: dropped
        r.becomeFollower(1, 1)
        r.step(readIndex(2, b"x"))
        [fwd] = r.readMessages()
        self.assertEqual((fwd.type, fwd.to, fwd.term, fwd.entries[0].Data),
                         (MsgReadIndex, 1, 0, b"x"))
        r.step(msg(MsgReadIndexResp, frm=1, to=2, term=1, index=7, entries=[b"x"]))
        self.assertEqual(r.readStates, [ReadState(7, b"x")])

    def test_earlierReadsAnsweredByLaterQuorum(self):
        """A quorum echo of a later context answers every read queued before it."""
        r = newTestRaft(1, [1, 2, 3])
        r.becomeCandidate()
        r.becomeLeader()
        r.raftLog.commitTo(r.raftLog.lastIndex())
        r.step(readIndex(1, b"a"))
        r.step(readIndex(1, b"b"))
        resp = msg(MsgHeartbeatResp, frm=3, to=1, term=r.term)
        resp.context = b"b"
        r.step(resp)
        self.assertEqual(r.readStates, [ReadState(1, b"a"), ReadState(1, b"b")])
