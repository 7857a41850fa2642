# -*- test-case-name: raftmux.test.test_ckit_node -*-
"""
``CkitNode``, the Twisted shell, on a fake clock over the in-memory
network of ``raftmux.testing.membership``: ckit's node tests (initial
viewer, transitions, peers learn state changes, observers fire, re-register
and unregister, peers join and leave) plus the shell's own promises
(``changeState`` waits for the gossip, observers see only the latest peer
list, a partition heals by rejoining the dead, ``ClusterGossip``'s view).
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from raftmux.ckit import (
    CkitNode,
    ClusterGossip,
    Op,
    ParticipantObserver,
    PeerState,
    StateTransitionError,
    ckitConfig,
    ring,
)
from raftmux.memberlist.messages import NodeStateType
from raftmux.testing.membership import MemoryNetwork

V, P, T = PeerState.VIEWER, PeerState.PARTICIPANT, PeerState.TERMINATING


def fastConfig(name):
    """Short timings so a fake-clock test covers many rounds."""
    return ckitConfig(name, probeInterval=0.2, probeTimeout=0.1, gossipInterval=0.05,
                      suspicionMult=3, pushPullInterval=2.0, gossipToTheDeadTime=5.0)


class Harness:
    def __init__(self, testCase):
        self.clock = task.Clock()
        self.net = MemoryNetwork(self.clock, latency=0.001)
        self.testCase = testCase
        self.nodes = []

    def add(self, name, port, **kw):
        node = CkitNode(fastConfig(name), self.net.transport("127.0.0.1:%d" % port),
                        reactor=self.clock, **kw)
        node.startService()
        self.run(lambda: node.memberlist.core is not None, 1.0)
        self.nodes.append(node)
        return node

    def run(self, predicate, limit, step=0.01):
        """Advance the fake clock until ``predicate()``; fail the test after ``limit`` seconds."""
        for _ in range(int(limit / step) + 1):
            if predicate():
                return
            self.clock.advance(step)
        if not predicate():
            self.testCase.fail("not reached within %.1f s (fake clock)" % (limit,))

    def result(self, d, limit=10.0):
        box = []
        d.addBoth(box.append)
        self.run(lambda: box, limit)
        return box[0]

    def cluster(self, n):
        nodes = [self.add("node-%s" % "abcdefgh"[i], 7000 + i) for i in range(n)]
        for node in nodes[1:]:
            self.result(node.start([nodes[0].address]))
        self.run(lambda: all(len(m.peers()) == n for m in nodes), 10.0)
        return nodes


def names(peers):
    return [(p.name, p.state) for p in peers]


class NodeTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self)

    def tearDown(self):
        for node in self.h.nodes:
            if node.running:
                self.h.result(node.stopService(), 30.0)

    def test_startBeforeRunningFails(self):
        node = CkitNode(fastConfig("early"), self.h.net.transport("127.0.0.1:6999"),
                        reactor=self.h.clock)
        self.assertIsInstance(self.h.result(node.start(["127.0.0.1:7000"])).value, RuntimeError)

    def test_initialViewerAndTransitions(self):
        """ckit: a node starts as a viewer; invalid transitions fail with ckit's text."""
        a = self.h.add("node-a", 7000)
        self.assertEqual(a.currentState, V)
        self.assertIsNone(self.h.result(a.changeState(P)))  # alone: at once
        failure = self.h.result(a.changeState(V))
        self.assertIsInstance(failure.value, StateTransitionError)
        self.assertEqual(str(failure.value), "invalid transition from participant to viewer")
        self.assertEqual(names(a.peers()), [("node-a", P)])

    def test_peersLearnStateChanges(self):
        """ckit: a becomes a participant, b a participant then terminating; each sees the other."""
        a, b = self.h.cluster(2)
        self.h.result(a.changeState(P))
        self.h.result(b.changeState(P))
        self.h.result(b.changeState(T))
        self.h.run(lambda: names(a.peers()) == [("node-a", P), ("node-b", T)]
                   and names(b.peers()) == [("node-a", P), ("node-b", T)], 10.0)

    def test_changeStateWaitsForGossip(self):
        """With peers, the Deferred fires only once the broadcast went out enough times."""
        a, b, c = self.h.cluster(3)
        # Every node's queue, not only a's: a peer still gossiping its join
        # would put its message back in a's queue (ckit re-broadcasts news).
        self.h.run(lambda: all(m.core.broadcasts.numQueued() == 0 for m in (a, b, c)), 10.0)
        d = a.changeState(P)
        self.assertFalse(d.called)
        self.assertEqual(a.core.broadcasts.numQueued(), 1)
        self.h.result(d)
        self.assertEqual(a.core.broadcasts.numQueued(), 0)
        self.h.run(lambda: all(m.core.peer("node-a").state == P for m in (b, c)), 5.0)

    def test_peersJoinAndLeave(self):
        """ckit's TestNode_Peers: three join through a chain; one stops and is gone from the others."""
        a = self.h.add("node-a", 7000)
        b = self.h.add("node-b", 7001)
        c = self.h.add("node-c", 7002)
        self.h.result(b.start([a.address]))
        self.h.result(c.start([b.address]))
        self.h.run(lambda: len(a.peers()) == 3, 10.0)
        self.assertEqual([p.toJSON() for p in a.peers()], [
            {"name": "node-a", "addr": "127.0.0.1:7000", "isSelf": True, "state": "viewer"},
            {"name": "node-b", "addr": "127.0.0.1:7001", "isSelf": False, "state": "viewer"},
            {"name": "node-c", "addr": "127.0.0.1:7002", "isSelf": False, "state": "viewer"}])
        self.h.result(c.stopService())
        self.h.run(lambda: len(a.peers()) == 2 and len(b.peers()) == 2, 10.0)
        left = [n for n in a.memberlist.allNodes() if n.name == "node-c"]
        self.assertEqual(left[0].state, NodeStateType.LEFT)

    def test_observers(self):
        """
        ckit's TestNode_Observe: called when the peer set changes, kept while
        it returns True, dropped when it returns False; only the latest list
        is delivered, and an unchanged one is not repeated.
        """
        a = self.h.add("node-a", 7000)
        seen, once = [], []
        a.observe(lambda peers: seen.append(names(peers)) or True)

        class Once:
            def notifyPeersChanged(self, peers):
                once.append(names(peers))
                return False
        a.observe(Once())
        b = self.h.add("node-b", 7001)
        self.h.result(b.start([a.address]))
        self.h.run(lambda: seen and len(seen[-1]) == 2, 5.0)
        self.assertEqual(len(once), 1)
        # three changes within one reactor turn: observers hear only the last
        count = len(seen)
        a.core.changeState(P)
        a.core.changeState(T)
        a.core.notifyUpdate(b.memberlist.localNode)  # an unchanged peer list
        self.h.clock.advance(0)
        self.assertEqual(seen[count:], [[("node-a", T), ("node-b", V)]])
        self.assertEqual(len(once), 1)

    def test_participantObserver(self):
        """Forwards only when the participants changed (ckit's observer_test)."""
        a = self.h.add("node-a", 7000)
        heard = []
        a.observe(ParticipantObserver(lambda peers: heard.append(names(peers)) or True))
        b = self.h.add("node-b", 7001)
        self.h.result(b.start([a.address]))
        self.h.run(lambda: len(a.peers()) == 2, 5.0)
        self.assertEqual(heard, [[("node-a", V)]])  # the first list: no participants yet
        self.h.result(b.changeState(P))
        self.h.run(lambda: len(heard) == 2, 5.0)
        self.assertEqual(heard[-1], [("node-a", V), ("node-b", P)])

    def test_sharderFollowsCluster(self):
        sharders = {}
        a = self.h.add("node-a", 7000, sharder=ring(64))
        sharders["a"] = a
        b = self.h.add("node-b", 7001)
        self.h.result(b.start([a.address]))
        self.assertRaises(ValueError, a.lookup, "some-key", 1)
        self.h.result(b.changeState(P))
        self.h.run(lambda: a.core.peer("node-b").state == P, 5.0)
        self.assertEqual([p.name for p in a.lookup("some-key", 1, Op.READ)], ["node-b"])
        self.assertRaises(RuntimeError, b.lookup, "some-key", 1)

    def test_restartAsViewer(self):
        """ckit: a stopped terminating node that comes back is a viewer again everywhere."""
        a, b = self.h.cluster(2)
        self.h.result(b.changeState(P))
        self.h.result(b.changeState(T))
        self.h.run(lambda: names(a.peers())[-1] == ("node-b", T), 5.0)
        self.h.result(b.stopService())
        self.h.run(lambda: len(a.peers()) == 1, 10.0)
        again = self.h.add("node-b", 7001)
        self.h.result(again.start([a.address]))
        self.h.run(lambda: names(a.peers()) == [("node-a", V), ("node-b", V)], 10.0)

    def test_partitionHealsByRejoining(self):
        """
        Cut {a, b} from {c, d, e} until each side holds the other dead, then
        heal: the rejoin loop (joining the dead) brings all five back.
        """
        nodes = [self.h.add("node-%s" % x, 7000 + i, rejoinInterval=1.0)
                 for i, x in enumerate("abcde")]
        for node in nodes[1:]:
            self.h.result(node.start([nodes[0].address]))
        self.h.run(lambda: all(len(m.peers()) == 5 for m in nodes), 10.0)
        left, right = nodes[:2], nodes[2:]
        self.h.net.cut([m.address for m in left], [m.address for m in right])
        self.h.run(lambda: all(len(m.peers()) == 2 for m in left)
                   and all(len(m.peers()) == 3 for m in right), 60.0)
        self.h.net.heal()
        self.h.run(lambda: all(len(m.peers()) == 5 for m in nodes), 30.0)

    def test_killedMemberDetected(self):
        a, b, c = self.h.cluster(3)
        self.h.net.kill(c.address)
        self.h.run(lambda: len(a.peers()) == 2 and len(b.peers()) == 2, 30.0)
        dead = [n for n in a.memberlist.allNodes() if n.name == "node-c"]
        self.assertEqual(dead[0].state, NodeStateType.DEAD)
        self.h.nodes.remove(c)
        c.memberlist.core.stop()


class ClusterGossipTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self)
        self.gossips = []

    def tearDown(self):
        for g in self.gossips:
            if g.running:
                self.h.result(g.stopService(), 30.0)

    def add(self, name, port, memberID, role, join=()):
        g = ClusterGossip(self.h.clock, name, memberID, ["http://127.0.0.1:%d" % (port + 100)],
                          role, transport=self.h.net.transport("127.0.0.1:%d" % port),
                          config=fastConfig(name), join=join)
        g.startService()
        self.gossips.append(g)
        return g

    def test_viewAndUpdate(self):
        """Each member's memberlist and ckit state and raft identity; updates spread; a dead one shows."""
        a = self.add("n1", 7000, 0x8e9e05c52164694d, "leader")
        b = self.add("n2", 7001, 2, "follower", join=["127.0.0.1:7000"])
        c = self.add("n3", 7002, 3, "follower", join=["127.0.0.1:7000"])
        self.h.run(lambda: len(a.view()["members"]) == 3, 10.0)
        view = a.view()
        self.assertEqual(view["name"], "n1")
        self.assertEqual(view["members"][0], {
            "name": "n1", "address": "127.0.0.1:7000", "isSelf": True, "state": "alive",
            "incarnation": 1, "ckitState": "viewer", "memberID": "8e9e05c52164694d",
            "clientURLs": ["http://127.0.0.1:7100"], "role": "leader", "stateChange": 0.0})
        self.h.result(b.update(role="leader"))
        self.h.result(a.update(role="follower"))
        self.h.run(lambda: [m["role"] for m in c.view()["members"]]
                   == ["follower", "leader", "follower"], 10.0)
        failure = self.h.result(a.update(clientURLs=["http://x/" + "y" * 600]))
        self.assertIsInstance(failure.value, ValueError)
        self.assertEqual(a._meta(), a._meta())
        self.h.net.kill("127.0.0.1:7002")
        killedAt = self.h.clock.seconds()
        self.h.run(lambda: [m["state"] for m in a.view()["members"]]
                   == ["alive", "alive", "dead"], 30.0)
        self.assertGreater(a.view()["members"][2]["stateChange"], killedAt)
        self.gossips.remove(c)
        c.node.memberlist.core.stop()

    def test_setJoin(self):
        """
        New join addresses are joined at once; the rejoin loop tries only the
        current ones; an address that does not answer is no error.
        """
        a = self.add("n1", 7000, 1, "leader")
        b = self.add("n2", 7001, 2, "follower")
        self.h.run(lambda: b.node.memberlist.core is not None, 1.0)
        self.assertEqual(self.h.result(b.setJoin(["127.0.0.1:7000", "127.0.0.1:7999"])), 1)
        self.h.run(lambda: len(a.view()["members"]) == 2, 5.0)
        self.assertEqual(self.h.result(b.setJoin(["127.0.0.1:7000"])), 0)  # nothing new
        self.assertEqual(b.joinAddresses, ["127.0.0.1:7000"])
        self.assertEqual(self.h.result(b.setJoin(["127.0.0.1:7998"])), 0)  # no answer

    def test_setJoinBeforeStart(self):
        """Before the service runs, ``setJoin`` only records the addresses start joins."""
        a = self.add("n1", 7000, 1, "leader")
        b = ClusterGossip(self.h.clock, "n2", 2, [], "follower",
                          transport=self.h.net.transport("127.0.0.1:7001"),
                          config=fastConfig("n2"))
        self.assertEqual(self.h.result(b.setJoin(["127.0.0.1:7000"])), 0)
        b.startService()
        self.gossips.append(b)
        self.h.run(lambda: len(a.view()["members"]) == 2, 5.0)
