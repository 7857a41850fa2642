# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
The sans-IO memberlist core in deterministic simulations (fake clock,
in-memory network with loss and partitions), its timing formulas against
memberlist's, the broadcast queue, and hypothesis over random schedules.
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.core import (
    MemberlistCore,
    NodeJoined,
    NodeLeft,
    NodeUpdated,
    SendPacket,
    parseJoinAddress,
    pushPullScale,
)
from raftmux.memberlist.messages import (
    Alive,
    Dead,
    NodeStateType,
    Suspect,
    decodePacketMessage,
    ipToBytes,
    stripCrc,
)
from raftmux.memberlist.queue import (
    NamedBroadcast,
    SimpleBroadcast,
    TransmitLimitedQueue,
    retransmitLimit,
)
from raftmux.memberlist.suspicion import Suspicion, remainingSuspicionTime, suspicionTimeout
from raftmux.test.memberlist_sim import SimNetwork

ALIVE, SUSPECT, DEAD, LEFT = (NodeStateType.ALIVE, NodeStateType.SUSPECT, NodeStateType.DEAD,
                              NodeStateType.LEFT)


def fast(name, **kw):
    """DefaultLocalConfig's shape, with a short push/pull for the simulations."""
    return MemberlistConfig.local(name=name, **kw)


def cluster(n, seed=0, **kw):
    net = SimNetwork(seed=seed)
    nodes = [net.add(fast("n%d" % i, **kw)) for i in range(n)]
    for node in nodes[1:]:
        net.join(node, nodes[0])
    return net, nodes


def converged(nodes, names=None, state=ALIVE):
    names = names or [n.core.name for n in nodes]
    return all(n.view(name) == state for n in nodes for name in names)


class FormulaTests(SynchronousTestCase):
    """The numbers memberlist's util.go and suspicion.go compute."""

    def test_suspicionTimeout(self):
        self.assertEqual(suspicionTimeout(4, 1, 1.0), 4.0)
        self.assertEqual(suspicionTimeout(4, 10, 1.0), 4.0)
        self.assertAlmostEqual(suspicionTimeout(4, 100, 1.0), 8.0)
        self.assertAlmostEqual(suspicionTimeout(4, 1000, 0.5), 6.0)
        # Go truncates nodeScale to the millisecond: log10(50) = 1.69897 -> 1.698
        self.assertAlmostEqual(suspicionTimeout(3, 50, 1.0), 3 * 1.698)

    def test_retransmitLimit(self):
        self.assertEqual(retransmitLimit(4, 0), 0)
        self.assertEqual(retransmitLimit(4, 1), 4)
        self.assertEqual(retransmitLimit(4, 9), 4)
        self.assertEqual(retransmitLimit(4, 10), 8)
        self.assertEqual(retransmitLimit(4, 99), 8)
        self.assertEqual(retransmitLimit(4, 100), 12)

    def test_pushPullScale(self):
        self.assertEqual(pushPullScale(30.0, 32), 30.0)
        self.assertEqual(pushPullScale(30.0, 33), 60.0)
        self.assertEqual(pushPullScale(30.0, 64), 60.0)
        self.assertEqual(pushPullScale(30.0, 65), 90.0)

    def test_remainingSuspicionTime(self):
        """suspicion_test.go's table: (n, k, elapsed, min, max) -> remaining."""
        cases = [(0, 3, 0, 2, 30, 30), (1, 3, 2, 2, 30, 14), (2, 3, 3, 2, 30, 4.810),
                 (3, 3, 4, 2, 30, -2), (4, 3, 5, 2, 30, -3), (5, 3, 10, 2, 30, -8)]
        for n, k, elapsed, lo, hi, expected in cases:
            self.assertAlmostEqual(remainingSuspicionTime(n, k, elapsed, lo, hi), expected,
                                   places=3)

    def test_suspicionConfirmations(self):
        s = Suspicion("a", 3, 2.0, 30.0, now=100.0)
        self.assertEqual(s.deadline, 130.0)
        self.assertFalse(s.confirm("a", 101.0))
        self.assertTrue(s.confirm("b", 101.0))
        self.assertEqual(s.deadline, 100.0 + 16.0)  # max - log(2)/log(4) * 28
        self.assertTrue(s.confirm("c", 102.0))
        self.assertTrue(s.confirm("d", 103.0))
        self.assertEqual(s.deadline, 103.0)  # max(0, remaining): at most now
        self.assertFalse(s.confirm("e", 104.0))  # k reached
        self.assertEqual(Suspicion("a", 0, 2.0, 30.0, now=0.0).deadline, 2.0)

    def test_configDefaults(self):
        lan, local = MemberlistConfig(name="x"), MemberlistConfig.local(name="x")
        self.assertEqual((lan.probeInterval, lan.probeTimeout, lan.gossipInterval,
                          lan.suspicionMult, lan.retransmitMult, lan.indirectChecks),
                         (1.0, 0.5, 0.2, 4, 4, 3))
        self.assertEqual((local.tcpTimeout, local.probeTimeout, local.gossipInterval,
                          local.suspicionMult, local.retransmitMult, local.indirectChecks),
                         (1.0, 0.2, 0.1, 3, 2, 1))
        self.assertEqual(lan.vsn(), bytes([1, 5, 2, 0, 0, 0]))
        self.assertRaises(ValueError, MemberlistConfig, name="x", protocolVersion=6)

    def test_parseJoinAddress(self):
        self.assertEqual(parseJoinAddress("1.2.3.4", 7946), ("1.2.3.4", 7946))
        self.assertEqual(parseJoinAddress("n/1.2.3.4:5", 7946), ("1.2.3.4", 5))
        self.assertEqual(parseJoinAddress("::1", 7946), ("::1", 7946))
        self.assertEqual(parseJoinAddress("[::1]:9", 7946), ("::1", 9))
        self.assertRaises(ValueError, parseJoinAddress, "/1.2.3.4", 1)


class QueueTests(SynchronousTestCase):
    def test_orderAndLimit(self):
        q = TransmitLimitedQueue(lambda: 10, 1)  # limit 2 transmits
        finished = []
        for name, size in (("a", 10), ("b", 30), ("c", 20)):
            q.queueBroadcast(NamedBroadcast(name, b"x" * size, lambda n=name: finished.append(n)))
        # largest first, each costs overhead 2
        self.assertEqual([len(m) for m in q.getBroadcasts(2, 100)], [30, 20, 10])
        self.assertEqual([len(m) for m in q.getBroadcasts(2, 40)], [30])
        self.assertEqual(finished, ["b"])
        self.assertEqual([len(m) for m in q.getBroadcasts(2, 100)], [20, 10])
        self.assertEqual(sorted(finished), ["a", "b", "c"])
        self.assertEqual(q.numQueued(), 0)

    def test_namedReplaces(self):
        q = TransmitLimitedQueue(lambda: 1, 4)
        finished = []
        q.queueBroadcast(NamedBroadcast("n", b"old", lambda: finished.append("old")))
        q.queueBroadcast(NamedBroadcast("n", b"new"))
        self.assertEqual(finished, ["old"])
        self.assertEqual(q.getBroadcasts(0, 100), [b"new"])

    def test_invalidatesAndPrune(self):
        class Keyed(SimpleBroadcast):
            def __init__(self, key, data):
                SimpleBroadcast.__init__(self, data)
                self.key = key

            def invalidates(self, other):
                return getattr(other, "key", None) == self.key

        q = TransmitLimitedQueue(lambda: 1, 4)
        q.queueBroadcast(Keyed(1, b"a"))
        q.queueBroadcast(Keyed(2, b"b"))
        q.queueBroadcast(Keyed(1, b"c"))
        self.assertEqual(sorted(q.getBroadcasts(0, 100)), [b"b", b"c"])
        q.prune(1)
        self.assertEqual(q.numQueued(), 1)
        q.reset()
        self.assertEqual(q.numQueued(), 0)


class SimulationTests(SynchronousTestCase):
    def test_convergence(self):
        """5 to 10 nodes joining one seed all see everyone alive within seconds."""
        for n in (5, 7, 10):
            net, nodes = cluster(n, seed=n)
            # gossip alone may miss a node (as in Go); the first push/pull
            # round (within pushPullInterval, 15 s) completes the picture
            self.assertTrue(net.runUntil(lambda nodes=nodes: converged(nodes), 20.0), n)
            for node in nodes:
                self.assertEqual(node.core.numMembers(), n)
                self.assertLessEqual(set(node.results.values()), {None})
                joined = {e.node.name for _, e in node.events if isinstance(e, NodeJoined)}
                self.assertEqual(joined, {m.core.name for m in nodes})

    def test_failureDetection(self):
        """
        A killed node is suspected by everyone, then declared dead no sooner
        than the minimum suspicion timeout and no later than the maximum
        after the first suspicion.
        """
        n = 6
        net, nodes = cluster(n, seed=3)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        victim, rest = nodes[-1], nodes[:-1]
        net.kill(victim)
        killedAt = net.now
        name = victim.core.name
        self.assertTrue(net.runUntil(lambda: any(m.view(name) == SUSPECT for m in rest), 30.0))
        suspectedAt = net.now
        # every live member probes the victim within one round over n-1 nodes
        self.assertLessEqual(suspectedAt - killedAt, (n + 1) * 1.0)
        self.assertTrue(net.runUntil(lambda: converged(rest, [name], DEAD), 60.0))
        deadAt = net.now
        c = rest[0].core.config
        minimum = suspicionTimeout(c.suspicionMult, n, c.probeInterval)
        maximum = c.suspicionMaxTimeoutMult * minimum
        self.assertGreaterEqual(deadAt - suspectedAt, minimum - 0.01)
        self.assertLessEqual(deadAt - suspectedAt, maximum + 1.0)
        for m in rest:
            left = [e for _, e in m.events if isinstance(e, NodeLeft)]
            self.assertEqual([(e.node.name, e.node.state) for e in left], [(name, DEAD)])
            self.assertEqual(m.core.numMembers(), n - 1)

    def test_refutation(self):
        """A live node told it is suspect raises its incarnation; everyone sees it alive."""
        net, nodes = cluster(4, seed=5)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        target, accuser = nodes[1], nodes[2]
        before = target.core.localNode().incarnation
        accusation = Suspect(incarnation=before, node=target.core.name, fromNode="n2")
        accuser.handle(accuser.core.packetReceived(accusation.encode(), "127.0.0.1:1", net.now))
        self.assertEqual(accuser.view(target.core.name), SUSPECT)
        self.assertTrue(net.runUntil(
            lambda: all(m.core.node(target.core.name).incarnation > before
                        and m.view(target.core.name) == ALIVE for m in nodes), 10.0))
        # a dead message about ourselves is refuted too
        inc = target.core.localNode().incarnation
        target.handle(target.core.packetReceived(
            Dead(incarnation=inc + 5, node=target.core.name, fromNode="x").encode(),
            "127.0.0.1:1", net.now))
        self.assertEqual(target.core.localNode().incarnation, inc + 6)
        self.assertEqual(target.view(target.core.name), ALIVE)
        self.assertGreater(target.core.healthScore(), 0)

    def test_leave(self):
        net, nodes = cluster(5, seed=7)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        leaver = nodes[3]
        leaver.handle(leaver.core.leave(net.now))
        self.assertTrue(net.runUntil(lambda: leaver.done, 5.0))
        rest = [m for m in nodes if m is not leaver]
        self.assertTrue(net.runUntil(lambda: converged(rest, ["n3"], LEFT), 5.0))
        for m in rest:
            self.assertNotIn("n3", [x.name for x in m.core.members()])

    def test_leaveAlone(self):
        net = SimNetwork()
        node = net.add(fast("solo"))
        node.handle(node.core.leave(net.now))
        self.assertEqual([tag for _, tag in node.done], ["leave"])
        self.assertEqual(node.view("solo"), LEFT)

    def test_userBroadcasts(self):
        net, nodes = cluster(6, seed=9)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        # each getBroadcasts call (one per packet) counts a transmission, so a
        # user broadcast reaches only a few peers unless receivers pass it on,
        # as serf's delegate does: ours do too
        for node in nodes:
            node.delegate.rebroadcast = True
        for i, node in enumerate(nodes[:3]):
            node.delegate.queue.queueBroadcast(SimpleBroadcast(b"hello-%d" % i))
        want = {b"hello-0", b"hello-1", b"hello-2"}
        self.assertTrue(net.runUntil(
            lambda: all(want - {b"hello-%d" % i} <= set(m.delegate.received)
                        for i, m in enumerate(nodes)), 10.0))

    def test_bestEffortAndReliable(self):
        net, nodes = cluster(2, seed=1)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        a, b = nodes
        a.handle(a.core.sendBestEffort(b.address, b"direct"))
        net.runFor(0.1)
        self.assertIn(b"direct", b.delegate.received)
        from raftmux.memberlist.stream import StreamDecoder
        message = StreamDecoder().feed(a.core.reliableMessage(b"reliable"))
        b.handle(b.core.streamReceived(message, a.address, net.now))
        self.assertIn(b"reliable", b.delegate.received)

    def test_pushPullOnly(self):
        """With gossip off, push/pull alone spreads membership and user state."""
        net = SimNetwork(seed=11)
        kw = dict(gossipNodes=0, pushPullInterval=1.0)
        a, b, c = (net.add(fast(name, **kw)) for name in "abc")
        for node in (a, b, c):
            node.delegate.localStateValue = b"state-" + node.core.name.encode()
        net.join(b, a)
        net.join(c, b)
        self.assertTrue(net.runUntil(lambda: converged([a, b, c]), 10.0))
        net.runFor(5.0)
        self.assertIn((b"state-c", True), b.delegate.merged)
        self.assertTrue(any(data == b"state-a" for data, _ in c.delegate.merged))

    def test_metadataUpdate(self):
        net, nodes = cluster(4, seed=13)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        node = nodes[2]
        node.delegate.meta = b"role=leader"
        node.handle(node.core.updateNode(net.now))
        self.assertTrue(net.runUntil(
            lambda: all(m.core.node("n2").meta == b"role=leader" for m in nodes), 5.0))
        for m in nodes:
            if m is not node:
                self.assertTrue(any(isinstance(e, NodeUpdated) and e.node.meta == b"role=leader"
                                    for _, e in m.events))
        self.assertTrue(net.runUntil(lambda: node.done, 5.0))

    def test_partitionHealsThroughRefutation(self):
        """A node cut off from everyone is suspected, then refutes once the cut heals."""
        net, nodes = cluster(5, seed=17)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        lonely = nodes[4]
        for other in nodes[:4]:
            net.partition(lonely, other)
        self.assertTrue(net.runUntil(lambda: any(m.view("n4") in (SUSPECT, DEAD)
                                                 for m in nodes[:4]), 30.0))
        net.heal()
        self.assertTrue(net.runUntil(lambda: converged(nodes), 60.0))

    def test_lossyNetworkConverges(self):
        net = SimNetwork(seed=19, loss=0.2)
        nodes = [net.add(fast("n%d" % i)) for i in range(6)]
        for node in nodes[1:]:
            net.join(node, nodes[0])
        self.assertTrue(net.runUntil(lambda: converged(nodes), 30.0))

    def test_indirectProbeSavesNode(self):
        """
        When the direct path a->b is cut but others reach b, the indirect
        ping (with a nack-capable relay) keeps b alive in a's view.
        """
        net, nodes = cluster(4, seed=23, disableTcpPings=True)
        self.assertTrue(net.runUntil(lambda: converged(nodes), 10.0))
        a, b = nodes[0], nodes[1]
        net.partition(a, b)
        net.runFor(20.0)
        self.assertEqual(a.view("n1"), ALIVE)


class AliveOverridesTests(SynchronousTestCase):
    """An alive message with a higher incarnation overrides suspect and dead."""

    def setUp(self):
        self.core = MemberlistCore(fast("me"), "127.0.0.1", 7000)
        self.core.start(0.0)
        self.alive(1)

    def alive(self, inc, meta=b""):
        msg = Alive(incarnation=inc, node="peer", addr=ipToBytes("127.0.0.1"), port=7001,
                    meta=meta, vsn=bytes([1, 5, 2, 0, 0, 0]))
        return self.core.packetReceived(msg.encode(), "127.0.0.1:7001", 1.0)

    def test_overrides(self):
        self.core.packetReceived(Suspect(incarnation=1, node="peer", fromNode="x").encode(),
                                 "x:1", 1.0)
        self.assertEqual(self.core.node("peer").state, SUSPECT)
        self.alive(1)  # same incarnation: ignored
        self.assertEqual(self.core.node("peer").state, SUSPECT)
        self.alive(2)
        self.assertEqual(self.core.node("peer").state, ALIVE)
        out = self.core.packetReceived(Dead(incarnation=2, node="peer", fromNode="x").encode(),
                                       "x:1", 1.0)
        self.assertEqual([type(o) for o in out], [NodeLeft])
        self.assertEqual(self.core.node("peer").state, DEAD)
        self.core.packetReceived(Dead(incarnation=1, node="peer", fromNode="x").encode(),
                                 "x:1", 1.0)
        out = self.alive(3, meta=b"m")
        self.assertEqual([type(o) for o in out], [NodeJoined])
        self.assertEqual(self.core.node("peer").incarnation, 3)

    def test_badAliveIgnored(self):
        for vsn in (bytes([0, 5, 2, 0, 0, 0]), bytes([3, 2, 2, 0, 0, 0]), b"\x01\x05"):
            msg = Alive(incarnation=9, node="peer", addr=ipToBytes("127.0.0.1"), port=7001,
                        vsn=vsn)
            self.core.packetReceived(msg.encode(), "x:1", 1.0)
            self.assertEqual(self.core.node("peer").incarnation, 1)
        msg = Alive(incarnation=9, node="peer", addr=b"\x01", port=7001)
        self.core.packetReceived(msg.encode(), "x:1", 1.0)
        self.assertEqual(self.core.node("peer").incarnation, 1)

    def test_conflictingAddressRefused(self):
        msg = Alive(incarnation=9, node="peer", addr=ipToBytes("127.0.0.2"), port=7001,
                    vsn=bytes([1, 5, 2, 0, 0, 0]))
        self.core.packetReceived(msg.encode(), "x:1", 1.0)
        self.assertEqual(self.core.node("peer").addr, "127.0.0.1")

    def test_packetsToVersion5GetCrc(self):
        """Gossip to a peer whose protocol max is 5 carries the CRC wrapper, as Go's does."""
        out = self.core.tick(10.0)
        packets = [o for o in out if isinstance(o, SendPacket)]
        self.assertTrue(packets)
        for p in packets:
            self.assertEqual(p.data[0], 12)
            decodePacketMessage(stripCrc(p.data))

    def test_garbageIgnored(self):
        for data in (b"", b"\x0a\x00", b"\x0c\x00\x00\x00\x00\x00", b"\xff", b"\x07\x05"):
            self.assertEqual(self.core.packetReceived(data, "x:1", 1.0), [])


class RandomScheduleTests(SynchronousTestCase):
    """
    Invariants over random schedules of kills, partitions, heals, loss,
    leaves and meta updates:
    * the incarnation an observer records for a node never goes down while
      the node stays in its table;
    * a node that has not left sees itself alive;
    * after the faults stop, the survivors agree within a bounded time.
    """

    @settings(max_examples=20, deadline=None)
    @given(st.integers(0, 2 ** 16), st.lists(
        st.tuples(st.sampled_from(["kill", "cut", "heal", "loss", "meta", "leave", "run"]),
                  st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=8))
    def test_invariants(self, seed, ops):
        net = SimNetwork(seed=seed)
        nodes = [net.add(fast("n%d" % i)) for i in range(6)]
        for node in nodes[1:]:
            net.join(node, nodes[0])
        seen = {}

        def check():
            for obs in nodes:
                if not obs.alive:
                    continue
                me = obs.core.node(obs.core.name)
                if not obs.core.hasLeft():
                    self.assertEqual(me.state, ALIVE)
                for node in obs.core.allNodes():
                    key = (obs.core.name, node.name)
                    self.assertGreaterEqual(node.incarnation, seen.get(key, 0))
                    seen[key] = node.incarnation
                for key in [k for k in seen if k[0] == obs.core.name]:
                    if obs.core.node(key[1]) is None:
                        del seen[key]

        def runChecked(seconds):
            end = net.now + seconds
            while net.now < end and net.step():
                check()

        runChecked(3.0)
        for op, i, j in ops:
            a, b = nodes[i], nodes[j]
            if op == "kill" and a is not nodes[0]:
                net.kill(a)
            elif op == "cut" and a is not b:
                net.partition(a, b)
            elif op == "heal":
                net.heal()
            elif op == "loss":
                net.loss = 0.3 if net.loss == 0 else 0.0
            elif op == "meta" and a.alive and not a.core.hasLeft():
                a.delegate.meta = b"m%d" % j
                a.handle(a.core.updateNode(net.now))
            elif op == "leave" and a.alive and a is not nodes[0]:
                a.handle(a.core.leave(net.now))
            runChecked(1.0 + j)
        net.heal()
        net.loss = 0.0
        live = [n for n in nodes if n.alive and not n.core.hasLeft()]
        gone = [n for n in nodes if n not in live]
        names = [n.core.name for n in live]
        c = nodes[0].core.config
        bound = (len(nodes) + 2) * c.probeInterval + c.suspicionMaxTimeoutMult * \
            suspicionTimeout(c.suspicionMult, len(nodes), c.probeInterval) + 40
        self.assertTrue(net.runUntil(
            lambda: converged(live, names) and all(
                m.view(g.core.name) in (DEAD, LEFT, None) for m in live for g in gone),
            bound), (ops, [(m.core.name, [(x.name, x.state) for x in m.core.allNodes()])
                           for m in live]))
        self.assertTrue(math.isfinite(net.now))


NAMES = st.sampled_from(["me", "peer", "other", ""])


def gossipMessages():
    inc = st.integers(0, 8)
    addr = st.sampled_from([ipToBytes("127.0.0.1"), ipToBytes("127.0.0.2"), b"", b"\x01"])
    vsn = st.sampled_from([bytes([1, 5, 2, 0, 0, 0]), b"", bytes([0, 5, 2, 0, 0, 0]), b"\x01"])
    alive = st.builds(Alive, incarnation=inc, node=NAMES, addr=addr,
                      port=st.sampled_from([7000, 7001, 0]), meta=st.binary(max_size=4), vsn=vsn)
    suspect = st.builds(Suspect, incarnation=inc, node=NAMES, fromNode=NAMES)
    dead = st.builds(Dead, incarnation=inc, node=NAMES, fromNode=NAMES)
    return st.one_of(alive, suspect, dead)


class RandomInputTests(SynchronousTestCase):
    """
    Random gossip about ourselves and others, and random bytes, never raise;
    our own view of ourselves stays alive; recorded incarnations never go
    down; an alive with a higher incarnation always wins over suspect/dead.
    """

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(gossipMessages(), st.binary(max_size=80)), max_size=30))
    def test_randomGossip(self, inputs):
        core = MemberlistCore(fast("me"), "127.0.0.1", 7000)
        core.start(0.0)
        seen = {}
        now = 0.0
        for item in inputs:
            now += 0.3
            data = item if isinstance(item, bytes) else item.encode()
            before = core.node(item.node) if isinstance(item, Alive) else None
            core.packetReceived(data, "127.0.0.9:1", now)
            if isinstance(item, Alive) and item.node not in ("me", "") and item.port and \
                    item.vsn == bytes([1, 5, 2, 0, 0, 0]) and len(item.addr) == 4 and \
                    item.incarnation > (before.incarnation if before else 0) and \
                    (before is None or before.state == LEFT or
                     (before.addr, before.port) == ("127.0.0.%d" % item.addr[3], item.port)):
                node = core.node(item.node)
                self.assertEqual((node.state, node.incarnation), (ALIVE, item.incarnation))
            core.tick(now)
            self.assertEqual(core.node("me").state, ALIVE)
            for node in core.allNodes():
                self.assertGreaterEqual(node.incarnation, seen.get(node.name, 0))
                seen[node.name] = node.incarnation
