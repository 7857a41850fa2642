# -*- test-case-name: raftmux.test.test_node_state -*-
"""
The node's replicated state, sans-IO: what an entry's data is (etcd's v3
and v2 requests, raftmux's older commands, anything else), how the state
applies it, etcd's checks on membership changes, and snapshots (round
trips, damage, foreign and older formats).
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from raftmux.mvcc.errors import (
    ErrLeaseNotFound,
    ErrMemberExist,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrPeerURLExist,
    ErrTooManyLearners,
)
from raftmux.mvcc.snapshot import SnapshotError
from raftmux.node import entries
from raftmux.node import kv as legacy
from raftmux.node.members import memberContext
from raftmux.node.state import (
    ADDED,
    PROMOTED,
    REMOVED,
    UPDATED,
    ForeignSnapshot,
    NodeState,
)
from raftmux.raftpb import (
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
)

keys = st.binary(min_size=1, max_size=32)
values = st.binary(max_size=64)


def put(key, value, id=1, lease=0):
    r = raft_internal_pb2.InternalRaftRequest(put=rpc_pb2.PutRequest(
        key=key, value=value, lease=lease))
    r.header.ID = id
    return r.SerializeToString()


def goPublish(id, memberID, attributes):
    """
    The bytes etcd 3.4's ``publish`` proposes: gogoproto writes every
    non-nullable field of the proto2 ``Request``, zero or not.
    """
    r = etcdserver_pb2.Request(
        ID=id, Method="PUT", Path="/0/members/%x/attributes" % (memberID,),
        Val=json.dumps(attributes, separators=(",", ":")), Dir=False, PrevValue="",
        PrevIndex=0, Expiration=0, Wait=False, Since=0, Recursive=False, Sorted=False,
        Quorum=False, Time=0, Stream=False)
    return r.SerializeToString()


class EntryTests(SynchronousTestCase):

    @given(keys, values, st.integers(1, 2 ** 64 - 1))
    def test_v3RoundTrip(self, key, value, id):
        decoded = entries.decodeEntry(put(key, value, id))
        self.assertEqual(decoded.kind, entries.V3)
        self.assertEqual((decoded.request.put.key, decoded.request.put.value), (key, value))
        self.assertEqual(entries.requestID(decoded), id)

    def test_etcdPublishIsV2(self):
        data = goPublish(77, 0x8E9E05C52164694D, {"name": "e1", "clientURLs": ["http://a:1"]})
        decoded = entries.decodeEntry(data)
        self.assertEqual(decoded.kind, entries.V2)
        self.assertEqual(entries.requestID(decoded), 77)
        self.assertEqual(entries.parseAttributesPath(decoded.request.Path), 0x8E9E05C52164694D)
        self.assertEqual(entries.parseAttributes(decoded.request.Val), ("e1", ["http://a:1"]))

    def test_v2InsideInternalRaftRequest(self):
        inner = entries.attributesRequest(5, 9, "n", [])
        data = raft_internal_pb2.InternalRaftRequest(v2=inner).SerializeToString()
        decoded = entries.decodeEntry(data)
        self.assertEqual((decoded.kind, decoded.request), (entries.V2, inner))

    def test_attributesRequestIsGoJSON(self):
        r = entries.attributesRequest(3, 0xABC, "n1", ["http://a:1"])
        self.assertEqual((r.ID, r.Method, r.Path), (3, "PUT", "/0/members/abc/attributes"))
        self.assertEqual(r.Val, '{"name":"n1","clientURLs":["http://a:1"]}')
        self.assertEqual(entries.attributesRequest(3, 1, "", []).Val, "{}")
        self.assertEqual(entries.decodeEntry(r.SerializeToString()).request, r)

    def test_legacyCommands(self):
        d = entries.decodeEntry(legacy.encodePut(b"k", b"v"))
        self.assertEqual((d.kind, d.request.put.key, d.request.put.value),
                         (entries.V3, b"k", b"v"))
        d = entries.decodeEntry(legacy.encodeDelete(b"k"))
        self.assertEqual((d.kind, d.request.delete_range.key), (entries.V3, b"k"))
        d = entries.decodeEntry(legacy.encodeCompareAndSet(b"k", b"a", b"b"))
        self.assertEqual(d.request.txn.compare[0].value, b"a")
        self.assertEqual(d.request.txn.success[0].request_put.value, b"b")
        d = entries.decodeEntry(legacy.encodeAttributes(7, "n", ["http://x:1"]))
        self.assertEqual((d.kind, entries.parseAttributesPath(d.request.Path)), (entries.V2, 7))
        self.assertEqual(entries.decodeEntry(legacy.MAGIC + b"Z").kind, entries.UNKNOWN)

    @given(st.binary(min_size=1, max_size=200))
    def test_anyBytes(self, data):
        decoded = entries.decodeEntry(data)
        self.assertIn(decoded.kind, (entries.V3, entries.V2, entries.UNKNOWN))

    def test_badAttributes(self):
        for value in ("{", "[]", '{"name":5}', '{"clientURLs":[1]}', '{"clientURLs":"x"}'):
            self.assertRaises(ValueError, entries.parseAttributes, value)
        self.assertIsNone(entries.parseAttributesPath("/0/members/xyz/attributes"))
        self.assertIsNone(entries.parseAttributesPath("/0/members/1/raftAttributes"))


def addMember(state, id, urls, name="", learner=False, promote=None):
    ctype = ConfChangeAddLearnerNode if learner else ConfChangeAddNode
    context = memberContext(id, urls, name, isLearner=learner, isPromote=promote)
    error = state.validateConfChange(ctype, id, context)
    if error is None:
        state.applyConfChange(ctype, id, context)
    return error


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "peerURLs", "name", "isLearner", "isPromote", "clientURLs",
                         "x"]), children, max_size=5),
    max_leaves=12)


class ContextTests(SynchronousTestCase):
    """Conf change contexts and attributes from the log: any bytes, no surprise."""

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(json_values)
    def test_anyJSONContext(self, value):
        from raftmux.node.members import parseConfChangeContext
        data = json.dumps(value).encode()
        parsed = parseConfChangeContext(data)
        if parsed is not None:
            self.assertIsInstance(parsed.id, int)
            self.assertTrue(all(isinstance(u, str) for u in parsed.peerURLs))
        state = NodeState()
        for ctype in (ConfChangeAddNode, ConfChangeAddLearnerNode, ConfChangeUpdateNode,
                      ConfChangeRemoveNode):
            if state.validateConfChange(ctype, 5, data) is None:
                state.applyConfChange(ctype, 5, data)
        try:
            entries.parseAttributes(json.dumps(value))
        except ValueError:
            pass

    @settings(deadline=None)
    @given(st.binary(max_size=64))
    def test_anyBytesContext(self, data):
        from raftmux.node.members import parseConfChangeContext
        parseConfChangeContext(data)

    def test_hugeNumbers(self):
        self.assertRaises(ValueError, entries.parseAttributes, "[" * 100000)
        from raftmux.node.members import parseConfChangeContext
        self.assertIsNone(parseConfChangeContext(b'{"id": Infinity, "peerURLs": []}'))
        self.assertIsNone(parseConfChangeContext(b'{"id": 1e400}'))


class StateTests(SynchronousTestCase):

    def setUp(self):
        self.state = NodeState()

    def test_putsTakeRevisions(self):
        s = self.state
        out = s.applyNormal(5, put(b"a", b"1", id=9))
        self.assertEqual((out.kind, out.id, out.error), (entries.V3, 9, None))
        self.assertEqual(out.result.response.header.revision, 2)
        s.applyNormal(6, put(b"a", b"2"))
        self.assertEqual(s.keySpace.revision, 3)
        self.assertEqual(s.keySpace.consistentIndex, 6)
        self.assertEqual(s.keySpace.get(b"a").value, b"2")

    def test_keySpaceErrorIsTheOutcome(self):
        out = self.state.applyNormal(1, put(b"a", b"1", lease=42))
        self.assertIsInstance(out.error, ErrLeaseNotFound)
        self.assertIsNone(out.result)
        self.assertEqual(self.state.keySpace.revision, 1)

    def test_attributesBeforeAndAfterTheMember(self):
        s = self.state
        out = s.applyNormal(1, goPublish(3, 7, {"name": "n7", "clientURLs": ["http://c:1"]}))
        self.assertEqual((out.kind, out.id, out.result), (entries.V2, 3, None))
        self.assertEqual(s.pendingAttributes, {7: ("n7", ["http://c:1"])})
        addMember(s, 7, ["http://p:1"])
        self.assertEqual(s.members.get(7).clientURLs, ["http://c:1"])
        self.assertEqual(s.members.get(7).name, "n7")
        s.applyNormal(2, goPublish(4, 7, {"name": "n7", "clientURLs": ["http://c:2"]}))
        self.assertEqual(s.members.get(7).clientURLs, ["http://c:2"])
        self.assertEqual(s.pendingAttributes, {})

    def test_clusterVersionAndOtherV2(self):
        s = self.state
        s.applyNormal(1, etcdserver_pb2.Request(ID=1, Method="PUT", Path="/0/version",
                                                Val="3.4.0").SerializeToString())
        self.assertEqual(s.clusterVersion, "3.4.0")
        s.applyNormal(2, etcdserver_pb2.Request(ID=2, Method="PUT", Path="/x",
                                                Val="y").SerializeToString())
        s.applyNormal(3, etcdserver_pb2.Request(ID=3, Method="DELETE",
                                                Path="/0/version").SerializeToString())
        s.applyNormal(4, goPublish(5, 1, {"name": 5}))
        self.assertEqual((s.skipped, s.clusterVersion), (3, "3.4.0"))

    def test_membershipAsEtcdValidatesIt(self):
        s = self.state
        self.assertIsNone(addMember(s, 1, ["http://a:1"], "a"))
        self.assertIsInstance(addMember(s, 1, ["http://z:1"]), ErrMemberExist)
        self.assertIsInstance(addMember(s, 2, ["http://a:1"]), ErrPeerURLExist)
        self.assertIsNone(addMember(s, 2, ["http://b:1"], learner=True, promote=False))
        self.assertTrue(s.members.get(2).isLearner)
        self.assertIsInstance(addMember(s, 3, ["http://c:1"], learner=True),
                              ErrTooManyLearners)
        self.assertIsInstance(addMember(s, 1, ["http://a:1"], promote=True),
                              ErrMemberNotLearner)
        self.assertIsInstance(addMember(s, 9, [], promote=True), ErrMemberNotFound)
        promote = memberContext(2, ["http://b:1"], isPromote=True)
        self.assertEqual(s.applyConfChange(ConfChangeAddNode, 2, promote)[0], PROMOTED)
        self.assertFalse(s.members.get(2).isLearner)
        update = memberContext(2, ["http://a:1"])
        self.assertIsInstance(s.validateConfChange(ConfChangeUpdateNode, 2, update),
                              ErrPeerURLExist)
        self.assertIsInstance(s.validateConfChange(ConfChangeUpdateNode, 5, update),
                              ErrMemberNotFound)
        update = memberContext(2, ["http://b:2"])
        self.assertIsNone(s.validateConfChange(ConfChangeUpdateNode, 2, update))
        self.assertEqual(s.applyConfChange(ConfChangeUpdateNode, 2, update)[0], UPDATED)
        self.assertEqual(s.members.get(2).peerURLs, ["http://b:2"])
        self.assertIsNone(s.validateConfChange(ConfChangeRemoveNode, 2, b""))
        self.assertEqual(s.applyConfChange(ConfChangeRemoveNode, 2, b""), (REMOVED, None))
        # A removed ID never comes back, and is no longer found.
        self.assertIsInstance(addMember(s, 2, ["http://q:1"]), ErrMemberNotFound)
        self.assertIsInstance(s.validateConfChange(ConfChangeRemoveNode, 2, b""),
                              ErrMemberNotFound)

    def test_contextlessPromoteOfALearner(self):
        """What raftmux's /cluster API wrote before etcd's context: still a promote."""
        s = self.state
        addMember(s, 4, ["http://d:1"], learner=True)
        self.assertIsNone(s.validateConfChange(ConfChangeAddNode, 4, b""))
        self.assertEqual(s.applyConfChange(ConfChangeAddNode, 4, b"")[0], PROMOTED)
        self.assertIsNone(s.validateConfChange(ConfChangeAddNode, 6, b""))
        self.assertEqual(s.applyConfChange(ConfChangeAddNode, 6, b"")[0], ADDED)


ops = st.lists(st.tuples(st.sampled_from("pdc"), keys, values), max_size=30)


class SnapshotTests(SynchronousTestCase):

    def filled(self, operations):
        s = NodeState(minLeaseTTL=3)
        addMember(s, 1, ["http://a:1"], "a")
        addMember(s, 2, ["http://b:1"], "b", learner=True)
        s.applyConfChange(ConfChangeRemoveNode, 3, b"")
        s.applyNormal(1, goPublish(1, 1, {"name": "a", "clientURLs": ["http://ca:1"]}))
        s.applyNormal(2, goPublish(2, 8, {"name": "later"}))
        s.applyNormal(3, etcdserver_pb2.Request(Method="PUT", Path="/0/version",
                                                Val="3.4.0").SerializeToString())
        for i, (op, key, value) in enumerate(operations):
            if op == "p":
                data = put(key, value)
            elif op == "d":
                r = raft_internal_pb2.InternalRaftRequest()
                r.delete_range.key = key
                data = r.SerializeToString()
            else:
                data = b"\x00\xffjunk"
            s.applyNormal(10 + i, data)
        return s

    def same(self, a, b):
        self.assertEqual(a.keySpace.snapshot(), b.keySpace.snapshot())
        self.assertEqual(a.members.asJSON(), b.members.asJSON())
        self.assertEqual((a.pendingAttributes, a.clusterVersion, a.skipped),
                         (b.pendingAttributes, b.clusterVersion, b.skipped))

    @settings(max_examples=50, deadline=None)
    @given(ops)
    def test_roundTrip(self, operations):
        s = self.filled(operations)
        other = NodeState(minLeaseTTL=3)
        other.restore(s.snapshot())
        self.same(s, other)
        self.assertEqual(other.snapshot(), s.snapshot())

    @settings(deadline=None)
    @given(st.integers(0, 400))
    def test_truncatedChangesNothing(self, cut):
        s = self.filled([("p", b"k%d" % i, b"v") for i in range(5)])
        data = s.snapshot()
        other = self.filled([("p", b"other", b"x")])
        before = other.snapshot()
        if cut >= len(data):
            return
        self.assertRaises((SnapshotError, ForeignSnapshot), other.restore, data[:cut])
        self.assertEqual(other.snapshot(), before)

    def test_foreign(self):
        s = NodeState()
        self.assertRaises(ForeignSnapshot, s.restore, b'{"Root":{}}')
        self.assertRaises(ForeignSnapshot, s.restore, b"")

    def test_legacySnapshot(self):
        old = legacy.KVStateMachine()
        old.apply(legacy.encodePut(b"b", b"2"))
        old.apply(legacy.encodePut(b"a", b"1"))
        old.apply(legacy.encodeAttributes(1, "a", ["http://ca:1"]))
        blob = old.snapshot([{"id": 1, "name": "a", "peerURLs": ["http://a:1"]}])
        s = NodeState()
        s.restore(blob)
        self.assertEqual(s.keySpace.get(b"a").value, b"1")
        self.assertEqual(s.keySpace.get(b"b").value, b"2")
        self.assertEqual(s.members.get(1).clientURLs, ["http://ca:1"])
        self.assertRaises(SnapshotError, s.restore, legacy.SNAPSHOT_MAGIC + b"\x00\x00\x00\x09{")
