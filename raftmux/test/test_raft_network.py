# -*- test-case-name: raftmux.test.test_raft_network -*-
"""
A deterministic in-memory network of raft cores for the raft tests (etcd's
``network`` from ``raft_test.go``), and tests of its controls.

Messages are delivered at once, in order, through ``Raft.step``; entries
stay in each core's unstable log (nothing crashes here; the random-schedule
tests use ``RawNode``s with storage for that).
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.config import Config
from raftmux.raft.core import Raft, RaftError
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raftpb import Entry, Message, MsgApp, MsgHup, MsgProp

MAX_DELIVERIES = 100000


def newTestConfig(id, peers, election=10, heartbeat=1, storage=None, **kw):
    kw.setdefault("maxSizePerMsg", None)
    kw.setdefault("maxInflightMsgs", 256)
    kw.setdefault("random", random.Random(id))
    return Config(id=id, storage=storage if storage is not None else MemoryStorage(),
                  electionTick=election, heartbeatTick=heartbeat, peers=peers, **kw)


def newTestRaft(id, peers, election=10, heartbeat=1, storage=None, **kw):
    return Raft(newTestConfig(id, peers, election, heartbeat, storage, **kw))


def newTestLearnerRaft(id, peers, learners, election=10, heartbeat=1, storage=None, **kw):
    return Raft(newTestConfig(id, peers, election, heartbeat, storage, learners=learners, **kw))


def msg(type, frm=0, to=0, **kw):
    """A ``Message`` with ``from`` given as ``frm``; ``entries`` as a list."""
    entries = kw.pop("entries", ())
    m = Message(type=type, to=to, **kw)
    setattr(m, "from", frm)
    for e in entries:
        m.entries.add().CopyFrom(e if isinstance(e, Entry) else Entry(Data=e))
    return m


def prop(to, data=b"somedata"):
    return msg(MsgProp, frm=to, to=to, entries=[data])


def hup(id):
    return msg(MsgHup, frm=id, to=id)


def readMessages(r):
    return r.readMessages()


def ents(*terms):
    """A raft whose log holds entries 1..n with the given terms."""
    storage = MemoryStorage()
    storage.append([Entry(Index=i + 1, Term=t) for i, t in enumerate(terms)])
    r = newTestRaft(1, [], 5, 1, storage)
    r.reset(terms[-1] if terms else 0)
    return r


def votedWithConfig(vote, term, **kw):
    from raftmux.raftpb import HardState
    storage = MemoryStorage()
    storage.setHardState(HardState(vote=vote, term=term))
    r = newTestRaft(1, [], 5, 1, storage, **kw)
    r.reset(term)
    return r


def entsWithConfig(terms, **kw):
    storage = MemoryStorage()
    storage.append([Entry(Index=i + 1, Term=t) for i, t in enumerate(terms)])
    r = newTestRaft(1, [], 5, 1, storage, **kw)
    r.reset(terms[-1] if terms else 0)
    return r


class BlackHole:
    """A peer that swallows everything."""

    def step(self, m):
        pass

    def readMessages(self):
        return []


class Network:
    """
    Peers 1..n.  ``peers`` entries may be ``None`` (a new 10/1 raft on fresh
    memory storage), a ``Raft`` (its id and configuration are reset to the
    network's) or a ``BlackHole``.
    """

    def __init__(self, *peers, configure=None, seed=0):
        size = len(peers)
        ids = list(range(1, size + 1))
        self.peers = {}
        self.storage = {}
        self.rng = random.Random(seed)
        for id, p in zip(ids, peers, strict=True):
            if p is None:
                self.storage[id] = MemoryStorage()
                kw = configure(id) if configure else {}
                self.peers[id] = newTestRaft(id, ids, 10, 1, self.storage[id], **kw)
            elif isinstance(p, Raft):
                learners = set(p.prs.learners)
                p.id = id
                p.prs.voters = set()
                p.prs.learners = set()
                p.prs.progress = {}
                for i in ids:
                    p.prs.initProgress(i, p.raftLog.lastIndex() + 1, i in learners)
                    p.prs.progress[i].recentActive = False
                p.isLearner = id in learners
                p.reset(p.term)
                self.peers[id] = p
            else:
                self.peers[id] = p
        self.dropm = {}
        self.ignorem = set()
        self.msgHook = None
        self.delivered = 0

    def send(self, *msgs):
        queue = list(msgs)
        while queue:
            m = queue.pop(0)
            self.delivered += 1
            if self.delivered > MAX_DELIVERIES:
                raise AssertionError("network did not quiesce")
            p = self.peers.get(m.to)
            if p is None:
                continue
            try:
                p.step(m)
            except RaftError:
                pass
            queue.extend(self.filter(p.readMessages()))

    def drop(self, frm, to, perc):
        self.dropm[(frm, to)] = perc

    def cut(self, one, other):
        self.drop(one, other, 2.0)
        self.drop(other, one, 2.0)

    def isolate(self, id):
        for other in self.peers:
            if other != id:
                self.cut(id, other)

    def ignore(self, msgType):
        self.ignorem.add(msgType)

    def recover(self):
        self.dropm = {}
        self.ignorem = set()

    def filter(self, msgs):
        out = []
        for m in msgs:
            if m.type in self.ignorem:
                continue
            if m.type == MsgHup:
                raise AssertionError("unexpected MsgHup on the network")
            perc = self.dropm.get((getattr(m, "from"), m.to), 0.0)
            if perc and self.rng.random() < perc:
                continue
            if self.msgHook is not None and not self.msgHook(m):
                continue
            out.append(m)
        return out


class NetworkTests(SynchronousTestCase):
    """The harness's own controls do what they say."""

    def test_electsOverNetwork(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        self.assertEqual(nt.peers[1].state, "StateLeader")
        self.assertEqual(nt.peers[2].lead, 1)

    def test_isolateStopsElection(self):
        nt = Network(None, None, None)
        nt.isolate(1)
        nt.send(hup(1))
        self.assertEqual(nt.peers[1].state, "StateCandidate")
        self.assertEqual(nt.peers[2].term, 0)

    def test_ignoreDropsType(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        nt.ignore(MsgApp)
        nt.send(prop(1))
        self.assertEqual(nt.peers[2].raftLog.lastIndex(), 1)
        nt.recover()
        nt.send(prop(1))
        self.assertEqual(nt.peers[2].raftLog.lastIndex(), 3)

    def test_blackHoleSwallows(self):
        nt = Network(None, BlackHole(), BlackHole())
        nt.send(hup(1))
        self.assertEqual(nt.peers[1].state, "StateCandidate")
