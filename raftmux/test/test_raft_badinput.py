# -*- test-case-name: raftmux.test.test_raft_badinput -*-
"""
Whatever a peer sends, ``RawNode.step`` either handles it or raises one of
etcd's documented errors, and the member's persistent promises hold: its
term never goes back, it votes at most once per term, its commit index
never goes back nor past its log, and its log stays a run of consecutive
indexes (issue 6, point 6, the core's part).
"""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.config import Config
from raftmux.raft.core import RaftError, StateCandidate, StateLeader
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.rawnode import RawNode
from raftmux.raftpb import Entry, HardState, Message, MsgApp

U64 = 2 ** 64 - 1

small = st.integers(0, 12)
anyIndex = st.one_of(small, st.just(U64), st.integers(0, U64))

entries = st.lists(st.tuples(st.integers(0, 14), st.integers(0, 6), st.integers(0, 2)),
                   max_size=4)


@st.composite
def messages(draw):
    m = Message(type=draw(st.integers(0, 18)), to=1,
                term=draw(st.one_of(st.integers(0, 6), st.just(U64))),
                logTerm=draw(st.integers(0, 6)), index=draw(anyIndex),
                commit=draw(anyIndex), reject=draw(st.booleans()),
                rejectHint=draw(anyIndex))
    setattr(m, "from", draw(st.sampled_from([1, 2, 3, 9])))
    for index, term, type in draw(entries):
        m.entries.add(Index=index, Term=term, Type=type, Data=b"d")
    if draw(st.booleans()):
        m.context = draw(st.binary(max_size=9))
    if draw(st.integers(0, 4)) == 0:
        meta = m.snapshot.metadata
        meta.index = draw(anyIndex)
        meta.term = draw(st.integers(0, 6))
        meta.conf_state.voters.extend(draw(st.lists(st.sampled_from([1, 2, 3, 9]),
                                                    max_size=3, unique=True)))
        meta.conf_state.learners.extend(draw(st.lists(st.sampled_from([1, 2, 3]),
                                                      max_size=2, unique=True)))
    return m


def member(state, seed):
    """Member 1 of {1,2,3} with a short log, in the given role."""
    s = MemoryStorage()
    s.append([Entry(Index=1, Term=1), Entry(Index=2, Term=1), Entry(Index=3, Term=2)])
    s.setHardState(HardState(term=2, commit=2))
    node = RawNode(Config(id=1, storage=s, peers=[1, 2, 3], checkQuorum=seed % 2 == 0,
                          preVote=seed % 3 == 0, random=random.Random(seed)))
    r = node.raft
    if state == StateLeader:
        r.becomeCandidate()
        r.becomeLeader()
    elif state == StateCandidate:
        r.becomeCandidate()
    else:
        r.becomeFollower(2, 2)
    node.ready()
    return node


class BadInputPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(state=st.sampled_from(["StateFollower", StateCandidate, StateLeader]),
           seed=st.integers(0, 5), msgs=st.lists(messages(), min_size=1, max_size=8))
    def test_anyMessageIsSafe(self, state, seed, msgs):
        node = member(state, seed)
        r = node.raft
        for m in msgs:
            term, vote, committed = r.term, r.vote, r.raftLog.committed
            try:
                node.step(m)
            except RaftError:
                pass
            if node.hasReady():
                node.ready()
            log = r.raftLog
            self.assertGreaterEqual(r.term, term)
            if r.term == term and vote:
                self.assertEqual(r.vote, vote)
            self.assertGreaterEqual(log.committed, committed)
            self.assertLessEqual(log.committed, log.lastIndex())
            first = log.firstIndex()
            ents = log.slice(first, log.lastIndex() + 1)
            self.assertEqual([e.Index for e in ents], list(range(first, first + len(ents))))
            for msg in r.msgs:
                self.assertLessEqual(max(msg.index, msg.commit, msg.term), U64)

    def test_termZeroAppendDropped(self):
        node = member(StateCandidate, 1)
        m = Message(type=MsgApp, to=1, term=0)
        setattr(m, "from", 2)
        node.step(m)
        self.assertEqual((node.raft.term, node.raft.state), (3, StateCandidate))
