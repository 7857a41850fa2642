# -*- test-case-name: raftmux.test.test_ckit_chash -*-
"""
ckit's consistent hashes and sharders, held to the properties ckit's own
tests state (``internal/chash/chash_test.go``, ``shard/shard_test.go``,
``shard/shard_updates_test.go``) and to the ones consistent hashing
promises: balance, minimal movement when a node joins or leaves, and
determinism.  Byte-level agreement with Go is in ``test_ckit_golden``.
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.ckit.chash import (
    KeyBuilder,
    Multiprobe,
    NotEnoughNodes,
    Rendezvous,
    Ring,
    stringKey,
)
from raftmux.ckit.peer import Peer, PeerState
from raftmux.ckit.shard import Op, Sharder, multiprobe, rendezvous, ring

ALL_HASHES = [("ring 256 tokens", lambda: Ring(256)), ("ring 512 tokens", lambda: Ring(512)),
              ("rendezvous", Rendezvous), ("multiprobe", Multiprobe)]


def randomNames(rng, count):
    return ["%010x" % rng.getrandbits(40) for _ in range(count)]


class HashTests(SynchronousTestCase):
    def test_consistent(self):
        """
        ckit's TestHashes_Consistent: three nodes come back in some order;
        without the first owner the second becomes first; without the second
        the third becomes second.
        """
        nodes = ["node-a", "node-b", "node-c"]
        key = stringKey("some-key")
        for name, factory in ALL_HASHES:
            h = factory()
            h.setNodes(nodes)
            owners = h.get(key, 3)
            self.assertEqual(sorted(owners), nodes, name)
            h.setNodes(owners[1:])
            self.assertEqual(h.get(key, 2)[0], owners[1], name)
            h.setNodes(owners[:1] + owners[2:])
            self.assertEqual(h.get(key, 2)[1], owners[2], name)

    def test_distribution(self):
        """
        ckit's TestHashes_Distribution: 10 random nodes, 100,000 random keys,
        every node owns within 25% of a tenth.
        """
        numNodes, numKeys = 10, 100000
        perfect = numKeys // numNodes
        for name, factory in ALL_HASHES:
            rng = random.Random(0)
            nodes = randomNames(rng, numNodes)
            h = factory()
            h.setNodes(nodes)
            counts = dict.fromkeys(nodes, 0)
            for key in randomNames(rng, numKeys):
                counts[h.get(stringKey(key), 1)[0]] += 1
            for node, count in counts.items():
                self.assertTrue(0.75 * perfect <= count <= 1.25 * perfect,
                                "%s: %s owns %d keys" % (name, node, count))

    def test_minimalMovementOnJoin(self):
        """
        A node joining takes keys only for itself (no key moves between
        old nodes), and about its share of them.
        """
        rng = random.Random(1)
        nodes = ["node-%d" % i for i in range(10)]
        keys = [stringKey(k) for k in randomNames(rng, 20000)]
        for name, factory in ALL_HASHES:
            before, after = factory(), factory()
            before.setNodes(nodes)
            after.setNodes(nodes + ["node-new"])
            moved = 0
            for key in keys:
                old, new = before.get(key, 1)[0], after.get(key, 1)[0]
                if old != new:
                    self.assertEqual(new, "node-new", name)
                    moved += 1
            share = len(keys) / 11
            self.assertTrue(0.5 * share <= moved <= 1.5 * share, "%s: %d moved" % (name, moved))

    def test_minimalMovementOnLeave(self):
        """A node leaving gives away only its own keys; every other key stays put."""
        rng = random.Random(2)
        nodes = ["node-%d" % i for i in range(10)]
        keys = [stringKey(k) for k in randomNames(rng, 20000)]
        for name, factory in ALL_HASHES:
            before, after = factory(), factory()
            before.setNodes(nodes)
            after.setNodes(nodes[:3] + nodes[4:])
            for key in keys:
                old = before.get(key, 1)[0]
                if old != "node-3":
                    self.assertEqual(after.get(key, 1)[0], old, name)

    def test_replicasMoveLittle(self):
        """With 3 owners, a leaving node's place in an owner list is taken; the others stay owners."""
        rng = random.Random(3)
        nodes = ["node-%d" % i for i in range(8)]
        for name, factory in ALL_HASHES[:3]:  # multiprobe takes neighbours, checked below
            before, after = factory(), factory()
            before.setNodes(nodes)
            after.setNodes([n for n in nodes if n != "node-5"])
            for key in randomNames(rng, 2000):
                k = stringKey(key)
                old = [n for n in before.get(k, 3) if n != "node-5"]
                new = after.get(k, 3)
                self.assertEqual(new[:len(old)], old, name)

    def test_deterministic(self):
        """The order nodes are given in, and asking again, change nothing."""
        rng = random.Random(4)
        nodes = randomNames(rng, 12)
        shuffled = list(nodes)
        rng.shuffle(shuffled)
        for name, factory in ALL_HASHES:
            a, b = factory(), factory()
            a.setNodes(nodes)
            b.setNodes(shuffled)
            for key in range(0, 2 ** 64, 2 ** 64 // 997):
                self.assertEqual(a.get(key, 4), b.get(key, 4), name)
                self.assertEqual(a.get(key, 4), a.get(key, 4), name)

    def test_notEnoughNodes(self):
        for _name, factory in ALL_HASHES:
            h = factory()
            h.setNodes(["a", "b"])
            with self.assertRaises(NotEnoughNodes) as caught:
                h.get(1, 3)
            self.assertEqual(str(caught.exception), "not enough nodes: need at least 3, have 2")
            self.assertEqual(h.get(1, 0), [])
            h.setNodes([])
            self.assertEqual(h.get(1, 0), [])
            self.assertRaises(NotEnoughNodes, h.get, 1, 1)

    @settings(max_examples=100, deadline=None)
    @given(nodes=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=12, unique=True),
           key=st.integers(0, 2 ** 64 - 1), data=st.data())
    def test_ownersAreDistinctMembers(self, nodes, key, data):
        n = data.draw(st.integers(0, len(nodes)))
        for name, factory in [("ring 8", lambda: Ring(8))] + ALL_HASHES[2:]:
            h = factory()
            h.setNodes(nodes)
            owners = h.get(key, n)
            self.assertEqual(len(owners), n, name)
            self.assertEqual(len(set(owners)), n, name)
            self.assertTrue(set(owners) <= set(nodes), name)

    def test_keyBuilder(self):
        builder = KeyBuilder()
        builder.write("some-")
        builder.write(b"key")
        self.assertEqual(builder.key(), stringKey("some-key"))


def peers(*spec):
    return [Peer(name, "", False, state) for name, state in spec]


V, P, T = PeerState.VIEWER, PeerState.PARTICIPANT, PeerState.TERMINATING


class CountingHash:
    def __init__(self, inner):
        self.inner = inner
        self.updates = 0

    def setNodes(self, nodes):
        self.updates += 1
        self.inner.setNodes(nodes)

    def get(self, key, n):
        return self.inner.get(key, n)


class SharderTests(SynchronousTestCase):
    def test_example(self):
        """ckit's shard Example: Ring(256), two participants; example-key belongs to node-b."""
        sharder = ring(256)
        sharder.setPeers(peers(("viewer-a", V), ("viewer-b", V), ("viewer-c", V),
                               ("node-a", P), ("node-b", P), ("node-c", T)))
        owners = sharder.lookup(stringKey("example-key"), 1, Op.READ_WRITE)
        self.assertEqual([p.name for p in owners], ["node-b"])

    def test_lookupByOp(self):
        """ckit's Test_Lookup table, for every sharder."""
        viewer, participant, terminating = (Peer("viewer-peer", "", False, V),
                                            Peer("participant-peer", "", False, P),
                                            Peer("terminating-peer", "", False, T))
        table = [([viewer], Op.READ, None),
                 ([viewer, participant], Op.READ, participant),
                 ([viewer, terminating], Op.READ, terminating),
                 ([viewer, terminating], Op.READ_WRITE, None),
                 ([viewer, participant, terminating], Op.READ_WRITE, participant)]
        for factory in (lambda: ring(128), rendezvous, multiprobe):
            for members, op, expect in table:
                sharder = factory()
                sharder.setPeers(members)
                if expect is None:
                    with self.assertRaises(NotEnoughNodes) as caught:
                        sharder.lookup(0, 1, op)
                    self.assertEqual(str(caught.exception),
                                     "not enough nodes: need at least 1, have 0")
                else:
                    self.assertEqual(sharder.lookup(0, 1, op), [expect])
        self.assertRaises(ValueError, ring(8).lookup, 0, 1, 7)

    def test_onlyRebuildsChangedMembership(self):
        """ckit's TestSharderOnlyRebuildsChangedMembership, step for step."""
        read, write = CountingHash(Ring(512)), CountingHash(Ring(512))
        hashes = iter([read, write])
        s = Sharder(lambda: next(hashes))
        ps = peers(("a", P), ("b", P))
        s.setPeers(ps)
        self.assertEqual((read.updates, write.updates), (1, 1))
        before = [s.lookup(stringKey(str(i)), 1)[0].name for i in range(1000)]
        moved = [Peer("a", "new-address", True, P), ps[1]]
        s.setPeers(moved + [Peer("viewer", "", False, V)])
        self.assertEqual((read.updates, write.updates), (1, 1))
        for i, name in enumerate(before):
            owner = s.lookup(stringKey(str(i)), 1, Op.READ_WRITE)[0]
            self.assertEqual(owner.name, name)
            if name == "a":
                self.assertEqual((owner.addr, owner.isSelf), ("new-address", True))
        s.setPeers([Peer("a", "", False, T), ps[1]])
        self.assertEqual((read.updates, write.updates), (1, 2))
        self.assertEqual({s.lookup(stringKey(str(i)), 1)[0].name for i in range(1000)}, {"b"})
        self.assertEqual(len(s.lookup(0, 2, Op.READ)), 2)
        s.setPeers([])
        self.assertEqual((read.updates, write.updates), (2, 3))
        self.assertRaises(NotEnoughNodes, s.lookup, 0, 1, Op.READ)
        s.setPeers([])
        self.assertEqual((read.updates, write.updates), (2, 3))
        s.setPeers(peers(("c", P)))
        self.assertEqual((read.updates, write.updates), (3, 4))
        self.assertEqual(s.lookup(0, 1)[0].name, "c")
        self.assertEqual([p.name for p in s.peers()], ["c"])

    def test_stringKeys(self):
        sharder = rendezvous()
        sharder.setPeers(peers(("a", P), ("b", P)))
        self.assertEqual(sharder.lookup("k", 2), sharder.lookup(stringKey("k"), 2))
