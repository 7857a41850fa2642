# -*- test-case-name: raftmux.test.test_ckit_core -*-
"""
``CkitCore``, ckit's node logic as a memberlist delegate: its rules one by
one (transitions, newer-wins, refuting stale news about ourselves,
push/pull merge and clean-up), then whole clusters of ``MemberlistCore`` +
``CkitCore`` in the deterministic simulation of ``memberlist_sim`` (fake
clock, in-memory network): states spread, a restarted node comes back as a
viewer, and under random schedules of state changes, kills, partitions and
loss every survivor ends up with every survivor's true state.
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.ckit.core import CkitCore, StateTransitionError, encodeMeta
from raftmux.ckit.messages import LocalState, StateMessage, decodeMessage
from raftmux.ckit.peer import Peer, PeerState
from raftmux.ckit.shard import rendezvous
from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.core import MemberlistCore, Node, NodeJoined, NodeLeft, NodeUpdated
from raftmux.memberlist.messages import NodeStateType
from raftmux.test.memberlist_sim import SimNetwork, SimNode

V, P, T = PeerState.VIEWER, PeerState.PARTICIPANT, PeerState.TERMINATING


def node(name, port=7000):
    return Node(name, "127.0.0.1", port, b"", NodeStateType.ALIVE, 1)


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, peers):
        self.calls.append(peers)


class CoreRuleTests(SynchronousTestCase):
    def setUp(self):
        self.changes = Recorder()
        self.sharder = rendezvous()
        self.core = CkitCore("me", onPeersChanged=self.changes, sharder=self.sharder)
        self.core.notifyJoin(node("me"))

    def test_initialViewerAndTransitions(self):
        """Viewer first; only viewer -> participant -> terminating, with ckit's error text."""
        self.assertEqual(self.core.currentState, V)
        self.assertFalse(self.core.changeState(P))
        with self.assertRaises(StateTransitionError) as caught:
            self.core.changeState(V)
        self.assertEqual(str(caught.exception), "invalid transition from participant to viewer")
        self.assertRaises(StateTransitionError, self.core.changeState, P)
        self.core.changeState(T)
        self.assertRaises(StateTransitionError, self.core.changeState, P)
        self.assertEqual(self.core.peers(), [Peer("me", "127.0.0.1:7000", True, T)])

    def test_changeStateBroadcastsAndReportsPeers(self):
        """The change is queued under our name, replaces an older one, and says whether anyone hears it."""
        self.core.notifyJoin(node("other", 7001))
        done = []
        self.assertTrue(self.core.changeState(P, lambda: done.append("p")))
        self.core.changeState(T, lambda: done.append("t"))
        self.assertEqual(done, ["p"])  # replaced in the queue: finished
        self.assertEqual(self.core.broadcasts.numQueued(), 1)
        sent = self.core.getBroadcasts(2, 1400)
        self.assertEqual(len(sent), 1)
        self.assertEqual(decodeMessage(sent[0]).newState, T)
        while self.core.broadcasts.numQueued():
            self.core.getBroadcasts(2, 1400)
        self.assertEqual(done, ["p", "t"])

    def test_peersChangedAfterSharder(self):
        """The sharder has the new peers before the callback runs."""
        seen = []
        core = CkitCore("me", sharder=self.sharder,
                        onPeersChanged=lambda peers: seen.append(self.sharder.peers()))
        core.notifyJoin(node("me"))
        core.changeState(P)
        self.assertEqual(seen[-1], [Peer("me", "127.0.0.1:7000", True, P)])

    def test_newerWins(self):
        self.core.notifyJoin(node("b", 7001))
        self.core.notifyMsg(StateMessage("b", P, 10).encode())
        self.assertEqual(self.core.peer("b").state, P)
        self.assertEqual(self.core.clock.now(), 11)
        self.core.notifyMsg(StateMessage("b", T, 10).encode())  # same time: ignored
        self.core.notifyMsg(StateMessage("b", V, 3).encode())   # older: ignored
        self.assertEqual(self.core.peer("b").state, P)
        self.core.notifyMsg(StateMessage("b", T, 12).encode())
        self.assertEqual(self.core.peer("b").state, T)
        self.assertEqual(self.core.receivedEvents["state_change"], 4)

    def test_stateBeforeJoinIsHeld(self):
        """A state heard before memberlist reports the node is applied when it joins."""
        self.core.notifyMsg(StateMessage("late", P, 4).encode())
        self.core.notifyJoin(node("late", 7002))
        self.assertEqual(self.core.peer("late").state, P)

    def test_staleNewsAboutUsRefuted(self):
        """
        A newer message about us (an earlier life) is replaced by our real
        state at a fresh tick and re-broadcast; so is one with our time but
        another state.
        """
        self.core.notifyMsg(StateMessage("me", T, 50).encode())
        held = self.core.stateOf("me")
        self.assertEqual((held.newState, held.time), (V, 52))
        self.assertEqual(self.core.peer("me").state, V)
        sent = self.core.getBroadcasts(2, 1400)
        self.assertEqual([decodeMessage(m) for m in sent], [StateMessage("me", V, 52)])
        self.core.notifyMsg(StateMessage("me", P, 52).encode())
        self.assertEqual(self.core.stateOf("me").newState, V)
        self.assertGreater(self.core.stateOf("me").time, 52)
        again = self.core.stateOf("me")
        self.core.notifyMsg(StateMessage("me", V, again.time).encode())  # the same: nothing
        self.assertEqual(self.core.stateOf("me"), again)

    def test_garbageCountedAndLogBounded(self):
        """Bad messages are counted; a flood of them costs a handful of log lines."""
        lines = []
        core = CkitCore("me", log=lambda level, text: lines.append((level, text)))
        for _ in range(3000):
            core.notifyMsg(b"\x12\x01\x09")
        core.notifyMsg(b"")
        self.assertEqual(core.receivedEvents["unknown_message"], 3001)
        warnings = [text for level, text in lines if level == "warn"]
        self.assertEqual(len(warnings), 5 + 3)
        self.assertEqual(warnings[0], "failed to parse gossip message: invalid message type 9")
        self.assertIn("(3000 so far)", warnings[-1])

    def test_localStateListsPeers(self):
        """Every peer, viewer at time 0 when never heard from; our clock."""
        self.core.notifyJoin(node("b", 7001))
        self.core.changeState(P)
        state = LocalState.decode(self.core.localState(False))
        self.assertEqual(state.currentTime, self.core.clock.now())
        self.assertEqual([(s.nodeName, s.newState, s.time) for s in state.nodeStates],
                         [("b", V, 0), ("me", P, 3)])

    def test_mergeRemoteState(self):
        """New entries applied and re-broadcast, stale ones about us refuted, orphans dropped."""
        self.core.notifyJoin(node("b", 7001))
        self.core.notifyMsg(StateMessage("gone", P, 1).encode())   # never a peer
        self.core.notifyMsg(StateMessage("kept", P, 1).encode())   # remote still knows it
        self.core.broadcasts.reset()
        remote = LocalState(30, (StateMessage("b", T, 20), StateMessage("me", P, 25),
                                 StateMessage("kept", P, 1)))
        self.core.mergeRemoteState(remote.encode(), True)
        self.assertEqual(self.core.peer("b").state, T)
        self.assertEqual(self.core.peer("me").state, V)
        self.assertGreater(self.core.stateOf("me").time, 30)
        self.assertIsNone(self.core.stateOf("gone"))
        self.assertIsNotNone(self.core.stateOf("kept"))
        self.assertEqual(self.core.broadcasts.numQueued(), 2)
        self.core.mergeRemoteState(b"\xc1", False)  # logged, ignored
        self.assertEqual(self.core.receivedEvents["merge_remote_state"], 1)

    def test_leaveRemovesPeer(self):
        self.core.notifyJoin(node("b", 7001))
        self.core.notifyUpdate(Node("b", "127.0.0.2", 7001, b"", NodeStateType.ALIVE, 2))
        self.assertEqual(self.core.peer("b").addr, "127.0.0.2:7001")
        self.core.notifyLeave(node("b", 7001))
        self.assertEqual([p.name for p in self.core.peers()], ["me"])
        self.assertEqual([[p.name for p in c] for c in self.changes.calls][-1], ["me"])

    def test_meta(self):
        core = CkitCore("m", nodeMeta=lambda: encodeMeta({"role": "leader"}))
        self.assertEqual(core.nodeMeta(512), b'{"role":"leader"}')
        self.assertEqual(CkitCore("m").nodeMeta(512), b"")
        self.assertRaises(ValueError, encodeMeta, {"x": "y" * 600})


# -- whole clusters in the simulation ------------------------------------------------------


class CkitSimNode(SimNode):
    """A simulated member whose delegate is a ``CkitCore``, told of membership events."""

    def handle(self, outputs):
        SimNode.handle(self, outputs)
        for out in outputs:
            if isinstance(out, NodeJoined):
                self.delegate.notifyJoin(out.node)
            elif isinstance(out, NodeLeft):
                self.delegate.notifyLeave(out.node)
            elif isinstance(out, NodeUpdated):
                self.delegate.notifyUpdate(out.node)


class CkitSim(SimNetwork):
    def addCkit(self, name, port):
        config = MemberlistConfig.local(name=name)
        ckit = CkitCore(name, retransmitMult=config.retransmitMult)
        core = MemberlistCore(config, "127.0.0.1", port, delegate=ckit,
                              rng=random.Random(self.rng.random()))
        member = CkitSimNode(self, core, ckit)
        self.nodes[member.address] = member
        self.byName[name] = member
        member.handle(core.start(self.now))
        return member


def ckitCluster(n, seed=0):
    net = CkitSim(seed=seed)
    nodes = [net.addCkit("n%d" % i, 7000 + i) for i in range(n)]
    for m in nodes[1:]:
        net.join(m, nodes[0])
    return net, nodes


def stateSeen(member, name):
    peer = member.delegate.peer(name)
    return peer.state if peer is not None else None


def statesAgree(nodes):
    """Every node lists exactly these nodes, each with its own current state."""
    truth = {m.core.name: m.delegate.currentState for m in nodes}
    return all({p.name: p.state for p in m.delegate.peers()} == truth for m in nodes)


class ClusterSimTests(SynchronousTestCase):
    def test_statesSpread(self):
        net, nodes = ckitCluster(5, seed=3)
        self.assertTrue(net.runUntil(lambda: statesAgree(nodes), 10.0))
        nodes[1].delegate.changeState(P)
        nodes[2].delegate.changeState(P)
        nodes[2].delegate.changeState(T)
        self.assertTrue(net.runUntil(lambda: statesAgree(nodes), 10.0))
        self.assertEqual([p.state for p in nodes[4].delegate.peers()], [V, P, T, V, V])

    def test_restartComesBackAsViewer(self):
        """ckit's "nodes can restart in viewer state": old news about the node is overruled."""
        net, nodes = ckitCluster(3, seed=5)
        b = nodes[2]
        b.delegate.changeState(P)
        b.delegate.changeState(T)
        self.assertTrue(net.runUntil(lambda: stateSeen(nodes[0], "n2") == T, 10.0))
        net.kill(b)
        self.assertTrue(net.runUntil(lambda: nodes[0].delegate.peer("n2") is None, 60.0))
        del net.nodes[b.address]
        reborn = net.addCkit("n2", 7002)
        net.join(reborn, nodes[0])
        live = [nodes[0], nodes[1], reborn]
        self.assertTrue(net.runUntil(lambda: statesAgree(live), 60.0))
        self.assertEqual(nodes[0].delegate.peer("n2").state, V)

    def test_pushPullAloneSpreadsStates(self):
        """With broadcasts lost, the push/pull exchange still carries every state."""
        net, nodes = ckitCluster(4, seed=7)
        self.assertTrue(net.runUntil(lambda: statesAgree(nodes), 10.0))
        for m in nodes:
            m.delegate.changeState(P)
            m.delegate.broadcasts.reset()
        self.assertTrue(net.runUntil(lambda: statesAgree(nodes), 120.0))

    @settings(max_examples=15, deadline=None)
    @given(st.integers(0, 2 ** 16), st.lists(
        st.tuples(st.sampled_from(["state", "kill", "cut", "heal", "loss", "run"]),
                  st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=8))
    def test_randomSchedules(self, seed, ops):
        """
        Invariants: a node's own entry is its real state; the time a node
        holds for another never goes back.  After the faults stop, every
        survivor knows every survivor's state.
        """
        net, nodes = ckitCluster(5, seed=seed)
        times = {}

        def check():
            for m in nodes:
                if not m.alive:
                    continue
                mine = m.delegate.peer(m.core.name)
                if mine is not None:
                    self.assertEqual(mine.state, m.delegate.currentState)
                for p in m.delegate.peers():
                    held = m.delegate.stateOf(p.name)
                    if held is None:
                        continue
                    key = (m.core.name, p.name)
                    self.assertGreaterEqual(held.time, times.get(key, 0))
                    times[key] = held.time

        def run(seconds):
            end = net.now + seconds
            while net.now < end and net.step():
                check()

        run(2.0)
        for op, i, j in ops:
            a = nodes[i]
            if op == "state" and a.alive:
                following = {V: P, P: T}.get(a.delegate.currentState)
                if following is not None:
                    a.delegate.changeState(following)
            elif op == "kill" and i != 0:
                net.kill(a)
            elif op == "cut" and i != j:
                net.partition(a, nodes[j])
            elif op == "heal":
                net.heal()
            elif op == "loss":
                net.loss = 0.2 if net.loss == 0 else 0.0
            run(0.5 + j)
        net.heal()
        net.loss = 0.0
        live = [m for m in nodes if m.alive]
        self.assertTrue(net.runUntil(lambda: statesAgree(live), 120.0),
                        [(m.core.name, m.delegate.currentState,
                          [(p.name, p.state) for p in m.delegate.peers()]) for m in live])
