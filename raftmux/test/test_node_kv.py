# -*- test-case-name: raftmux.test.test_node_kv -*-
"""
The node's state machine: command and snapshot codecs (round trips, and
any bytes decoded without an unexpected exception), foreign entries
skipped, and the member table and identity file.
"""

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.node import identity
from raftmux.node.kv import (
    MAGIC,
    SNAPSHOT_MAGIC,
    CommandError,
    KVStateMachine,
    decodeCommand,
    encodeAttributes,
    encodeCompareAndSet,
    encodeDelete,
    encodePut,
)
from raftmux.node.members import MemberTable, memberContext, parseMemberContext

keys = st.binary(min_size=1, max_size=64)
values = st.binary(max_size=256)


class CommandTests(SynchronousTestCase):

    @given(keys, values)
    def test_putRoundTrip(self, key, value):
        self.assertEqual(decodeCommand(encodePut(key, value)), (b"P", (key, value)))

    @given(keys)
    def test_deleteRoundTrip(self, key):
        self.assertEqual(decodeCommand(encodeDelete(key)), (b"D", (key,)))

    @given(keys, values, values)
    def test_compareAndSetRoundTrip(self, key, prev, value):
        self.assertEqual(decodeCommand(encodeCompareAndSet(key, prev, value)),
                         (b"C", (key, prev, value)))

    @given(keys, values, values, st.integers(min_value=0, max_value=600))
    def test_truncatedCompareAndSetRefused(self, key, prev, value, cut):
        """
        A compare-and-set cut anywhere before its value is refused; cut
        inside the value it decodes with the same key and comparand.
        """
        data = encodeCompareAndSet(key, prev, value)
        cut = min(cut, len(data) - 1)
        try:
            result = decodeCommand(data[:cut])
        except CommandError:
            self.assertLess(cut, 13 + len(key) + len(prev))
            return
        if result is not None:
            self.assertEqual(result[1][:2], (key, prev))
            self.assertGreaterEqual(cut, 13 + len(key) + len(prev))

    def test_attributesRoundTrip(self):
        data = encodeAttributes(0x8E9E05C52164694D, "n1", ["http://127.0.0.1:2379"])
        self.assertEqual(decodeCommand(data),
                         (b"A", (0x8E9E05C52164694D, "n1", ["http://127.0.0.1:2379"])))

    @given(st.binary(max_size=64))
    def test_anyBytesDecodeOrRaiseCommandError(self, data):
        for blob in (data, MAGIC + data):
            try:
                decodeCommand(blob)
            except CommandError:
                pass

    @given(keys, values, st.integers(min_value=0, max_value=300))
    def test_truncatedCommandsAreRefused(self, key, value, cut):
        data = encodePut(key, value)
        cut = min(cut, len(data) - 1)
        truncated = data[:cut]
        try:
            result = decodeCommand(truncated)
        except CommandError:
            return
        # Only a cut inside the value still decodes: as a shorter value.
        if result is not None:
            self.assertEqual(result[1][0], key)

    def test_foreignEntriesSkipped(self):
        """An etcd InternalRaftRequest (or anything not ours) changes nothing."""
        sm = KVStateMachine()
        self.assertIsNone(sm.apply(b"\x08\x01\x12\x04abcd"))
        self.assertIsNone(sm.apply(MAGIC + b"Zjunk"))
        self.assertEqual((sm.data, sm.skipped), ({}, 2))

    def test_foreignEntriesMarkTheLog(self):
        """
        Once an entry that is not ours was applied, the state says so, and
        its snapshots carry that: the node then never proposes.
        """
        sm = KVStateMachine()
        sm.apply(encodePut(b"a", b"1"))
        self.assertFalse(sm.foreign)
        sm.apply(b"\x08\x01")
        self.assertTrue(sm.foreign)
        other = KVStateMachine()
        other.restore(sm.snapshot([]))
        self.assertTrue(other.foreign)
        clean = KVStateMachine()
        clean.apply(encodePut(b"a", b"1"))
        other.restore(clean.snapshot([]))
        self.assertFalse(other.foreign)


class StateMachineTests(SynchronousTestCase):

    def test_putDelete(self):
        sm = KVStateMachine()
        self.assertFalse(sm.apply(encodePut(b"a", b"1")))
        self.assertTrue(sm.apply(encodePut(b"a", b"2")))
        self.assertEqual(sm.get(b"a"), b"2")
        self.assertTrue(sm.apply(encodeDelete(b"a")))
        self.assertFalse(sm.apply(encodeDelete(b"a")))
        self.assertIsNone(sm.get(b"a"))

    def test_compareAndSet(self):
        """
        The key takes the new value only when it holds the comparand; an
        absent key never matches, not even an empty comparand.
        """
        sm = KVStateMachine()
        self.assertFalse(sm.apply(encodeCompareAndSet(b"a", b"", b"1")))
        self.assertIsNone(sm.get(b"a"))
        sm.apply(encodePut(b"a", b"1"))
        self.assertFalse(sm.apply(encodeCompareAndSet(b"a", b"2", b"3")))
        self.assertEqual(sm.get(b"a"), b"1")
        self.assertTrue(sm.apply(encodeCompareAndSet(b"a", b"1", b"3")))
        self.assertEqual(sm.get(b"a"), b"3")
        sm.apply(encodePut(b"e", b""))
        self.assertTrue(sm.apply(encodeCompareAndSet(b"e", b"", b"x")))
        self.assertEqual(sm.get(b"e"), b"x")

    @given(st.lists(st.tuples(st.sampled_from("pdc"), st.sampled_from([b"k1", b"k2"]),
                              st.sampled_from([b"", b"0", b"1", b"2"]),
                              st.sampled_from([b"", b"0", b"1", b"2"])), max_size=30))
    def test_commandsAgainstAModel(self, commands):
        """Any sequence of puts, deletes and compare-and-sets acts as a dict would."""
        sm = KVStateMachine()
        model = {}
        for op, key, a, b in commands:
            if op == "p":
                self.assertEqual(sm.apply(encodePut(key, a)), key in model)
                model[key] = a
            elif op == "d":
                self.assertEqual(sm.apply(encodeDelete(key)), key in model)
                model.pop(key, None)
            else:
                hit = model.get(key) == a
                self.assertEqual(sm.apply(encodeCompareAndSet(key, a, b)), hit)
                if hit:
                    model[key] = b
        self.assertEqual(sm.data, model)

    @settings(max_examples=50)
    @given(st.dictionaries(keys, values, max_size=30),
           st.lists(st.fixed_dictionaries({"id": st.integers(1, 2**64 - 1),
                                           "name": st.text(max_size=8),
                                           "peerURLs": st.lists(st.text(max_size=20))}),
                    max_size=3))
    def test_snapshotRoundTrip(self, data, members):
        sm = KVStateMachine()
        for k, v in data.items():
            sm.apply(encodePut(k, v))
        sm.apply(encodeAttributes(7, "n7", ["http://x:1"]))
        blob = sm.snapshot(members)
        other = KVStateMachine()
        other.apply(encodePut(b"stale", b"gone"))
        self.assertEqual(other.restore(blob), members)
        self.assertEqual(other.data, data)
        self.assertEqual(other.attributes, {7: ("n7", ["http://x:1"])})

    def test_foreignSnapshotIsEmptyState(self):
        """etcd's snapshot data (its v2 store JSON) restores as an empty state."""
        sm = KVStateMachine()
        sm.apply(encodePut(b"a", b"1"))
        self.assertIsNone(sm.restore(b'{"Root":{}}'))
        self.assertEqual(sm.data, {})

    @given(st.integers(min_value=len(SNAPSHOT_MAGIC), max_value=200))
    def test_damagedSnapshotRefused(self, cut):
        sm = KVStateMachine()
        for i in range(5):
            sm.apply(encodePut(b"key%d" % (i,), b"value%d" % (i,)))
        blob = sm.snapshot([])
        cut = min(cut, len(blob) - 1)
        try:
            sm.restore(blob[:cut])
        except CommandError:
            return
        # A cut exactly between records is a smaller, valid state.
        self.assertLessEqual(len(sm.data), 5)

    @given(st.binary(max_size=100))
    def test_randomSnapshotBytes(self, junk):
        try:
            KVStateMachine().restore(SNAPSHOT_MAGIC + junk)
        except CommandError:
            pass


class MemberTableTests(SynchronousTestCase):

    def test_contextIsEtcds(self):
        """The bootstrap context etcd writes (spec 11.3), byte for byte."""
        self.assertEqual(
            memberContext(2825987797056917605, ["http://127.0.0.1:23802"], "p2"),
            b'{"id":2825987797056917605,"peerURLs":["http://127.0.0.1:23802"],"name":"p2"}')
        self.assertEqual(parseMemberContext(memberContext(5, ["http://a:1"], "x")),
                         (5, ["http://a:1"], "x"))
        self.assertIsNone(parseMemberContext(b"{"))
        self.assertIsNone(parseMemberContext(b'{"peerURLs":[]}'))

    def test_snapshotRoundTrip(self):
        table = MemberTable()
        table.add(1, ["http://a:1"], "a")
        table.add(2, ["http://b:1"], "b", isLearner=True)
        table.setAttributes(1, "a", ["http://a:2"])
        table.remove(3)
        other = MemberTable()
        other.restore(json.loads(json.dumps(table.asJSON())))
        self.assertEqual(other.ids(), [1, 2])
        self.assertEqual(other.get(1).clientURLs, ["http://a:2"])
        self.assertTrue(other.get(2).isLearner)
        self.assertEqual(other.removed, {3})
        self.assertIs(other.findByPeerURLs(["http://b:1"]), other.get(2))


class IdentityTests(SynchronousTestCase):

    def test_roundTrip(self):
        path = os.path.join(self.mktemp(), "member", "identity.json")
        self.assertIsNone(identity.load(path))
        identity.save(path, 0xABC, 0xDEF, "n1", [{"id": 0xABC, "name": "n1",
                                                  "peerURLs": ["http://a:1"]}])
        loaded = identity.load(path)
        self.assertEqual((loaded["id"], loaded["clusterID"], loaded["members"][0]["id"]),
                         (0xABC, 0xDEF, 0xABC))

    def test_damaged(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("{not json")
        self.assertRaises(identity.IdentityError, identity.load, path)
