# -*- test-case-name: raftmux.test.test_mvcc_keyspace -*-
"""
L{raftmux.mvcc.KeySpace}: etcd 3.4's key-space semantics, case by case, as
read in etcd's ``mvcc/`` and ``etcdserver/apply.go``.
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import kv_pb2, raft_internal_pb2
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import DELETE, PUT, KeySpace, Record, errors

RR = pb.RangeRequest


def put(ks, key, value=b"", **kw):
    return ks.put(pb.PutRequest(key=key, value=value, **kw))


def delete(ks, key, end=b"", **kw):
    return ks.deleteRange(pb.DeleteRangeRequest(key=key, range_end=end, **kw))


def kvs(resp):
    return [(kv.key, kv.value) for kv in resp.kvs]


def keys(resp):
    return [kv.key for kv in resp.kvs]


def opPut(key, value=b"", **kw):
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **kw))


def opRange(key, end=b"", **kw):
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, range_end=end, **kw))


def opDelete(key, end=b"", **kw):
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end, **kw))


def opTxn(**kw):
    return pb.RequestOp(request_txn=pb.TxnRequest(**kw))


def cmp(key, target, result, **kw):
    return pb.Compare(key=key, target=getattr(pb.Compare, target),
                      result=getattr(pb.Compare, result), **kw)


class RevisionTests(SynchronousTestCase):
    """Revisions, versions, create revisions and tombstones."""

    def test_fresh(self):
        """A new key space is at revision 1 with nothing compacted (-1)."""
        ks = KeySpace()
        self.assertEqual((ks.revision, ks.compactRevision), (1, -1))
        resp = ks.range(RR(key=b"a"))
        self.assertEqual((resp.header.revision, resp.count, len(resp.kvs)), (1, 0, 0))

    def test_putRevisions(self):
        """
        Each put is one main revision; the key's create revision stays,
        its mod revision and version move.
        """
        ks = KeySpace()
        self.assertEqual(put(ks, b"a", b"1").response.header.revision, 2)
        self.assertEqual(put(ks, b"b", b"x").response.header.revision, 3)
        self.assertEqual(put(ks, b"a", b"2").response.header.revision, 4)
        kv = ks.range(RR(key=b"a")).kvs[0]
        self.assertEqual((kv.create_revision, kv.mod_revision, kv.version, kv.value),
                         (2, 4, 2, b"2"))
        self.assertEqual(ks.revision, 4)

    def test_deleteResetsCreateRevision(self):
        """After a delete, a put creates the key anew: version 1, new create revision."""
        ks = KeySpace()
        put(ks, b"a", b"1")
        put(ks, b"a", b"2")
        applied = delete(ks, b"a")
        self.assertEqual((applied.response.deleted, applied.response.header.revision), (1, 4))
        self.assertEqual(ks.range(RR(key=b"a")).count, 0)
        put(ks, b"a", b"3")
        kv = ks.range(RR(key=b"a")).kvs[0]
        self.assertEqual((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1))

    def test_deleteNothing(self):
        """A delete that finds nothing keeps the revision and makes no event."""
        ks = KeySpace()
        put(ks, b"a")
        applied = delete(ks, b"b")
        self.assertEqual((applied.response.deleted, applied.response.header.revision), (0, 2))
        self.assertEqual(applied.events, [])
        self.assertEqual(ks.revision, 2)

    def test_deleteRangeOneRevision(self):
        """A range delete is one main revision with one sub revision per key."""
        ks = KeySpace()
        for k in (b"a", b"b", b"c", b"d"):
            put(ks, k, k)
        applied = delete(ks, b"b", b"d", prev_kv=True)
        self.assertEqual(applied.response.deleted, 2)
        self.assertEqual(applied.response.header.revision, 6)
        self.assertEqual(kvs(pb.RangeResponse(kvs=applied.response.prev_kvs)),
                         [(b"b", b"b"), (b"c", b"c")])
        self.assertEqual([(e.type, e.key, e.kv.modRevision, e.kv.sub) for e in applied.events],
                         [(DELETE, b"b", 6, 0), (DELETE, b"c", 6, 1)])
        self.assertEqual(keys(ks.range(RR(key=b"a", range_end=b"\x00"))), [b"a", b"d"])

    def test_putPrevKv(self):
        """``prev_kv`` is absent for a new key and the old pair otherwise."""
        ks = KeySpace()
        first = put(ks, b"a", b"1", prev_kv=True).response
        self.assertFalse(first.HasField("prev_kv"))
        second = put(ks, b"a", b"2", prev_kv=True).response
        self.assertEqual((second.prev_kv.value, second.prev_kv.mod_revision), (b"1", 2))
        plain = put(ks, b"a", b"3").response
        self.assertFalse(plain.HasField("prev_kv"))

    def test_ignoreValue(self):
        """``ignore_value`` keeps the value (and moves the revision); missing key: ErrKeyNotFound."""
        ks = KeySpace()
        self.assertRaises(errors.ErrKeyNotFound, put, ks, b"a", ignore_value=True)
        self.assertEqual(ks.revision, 1)
        put(ks, b"a", b"1")
        put(ks, b"a", ignore_value=True)
        kv = ks.range(RR(key=b"a")).kvs[0]
        self.assertEqual((kv.value, kv.version, kv.mod_revision), (b"1", 2, 3))

    def test_leaseCheckedBeforeIgnore(self):
        """A top-level put checks its lease before ignore_value (etcd's order)."""
        ks = KeySpace()
        self.assertRaises(errors.ErrLeaseNotFound, put, ks, b"a", ignore_value=True, lease=5)

    def test_emptyKeyStored(self):
        """The applier stores what the log says, even the empty key (the API refuses it)."""
        ks = KeySpace()
        put(ks, b"", b"v")
        self.assertEqual(kvs(ks.range(RR(key=b""))), [(b"", b"v")])

    def test_get(self):
        """L{KeySpace.get} reads one key's record at a revision."""
        ks = KeySpace()
        put(ks, b"a", b"1")
        put(ks, b"a", b"2")
        self.assertEqual(ks.get(b"a").value, b"2")
        self.assertEqual(ks.get(b"a", 2).value, b"1")
        self.assertIsNone(ks.get(b"a", 1))
        self.assertRaises(errors.ErrFutureRev, ks.get, b"a", 4)


class RangeTests(SynchronousTestCase):
    """Range's forms and options."""

    def setUp(self):
        self.ks = KeySpace()
        for k in (b"a", b"ab", b"abc", b"b", b"c"):
            put(self.ks, k, k.upper())

    def r(self, **kw):
        return self.ks.range(RR(**kw))

    def test_forms(self):
        """One key, [key, end), a prefix, from a key on, everything, and an empty range."""
        self.assertEqual(keys(self.r(key=b"ab")), [b"ab"])
        self.assertEqual(keys(self.r(key=b"a", range_end=b"b")), [b"a", b"ab", b"abc"])
        self.assertEqual(keys(self.r(key=b"ab", range_end=b"ac")), [b"ab", b"abc"])
        self.assertEqual(keys(self.r(key=b"abc", range_end=b"\x00")), [b"abc", b"b", b"c"])
        self.assertEqual(keys(self.r(key=b"\x00", range_end=b"\x00")),
                         [b"a", b"ab", b"abc", b"b", b"c"])
        self.assertEqual(keys(self.r(key=b"c", range_end=b"a")), [])
        self.assertEqual(keys(self.r(key=b"zz")), [])

    def test_limitMoreCount(self):
        """``limit`` cuts, ``more`` says so, ``count`` counts the whole range."""
        resp = self.r(key=b"a", range_end=b"\x00", limit=2)
        self.assertEqual((keys(resp), resp.more, resp.count), ([b"a", b"ab"], True, 5))
        resp = self.r(key=b"a", range_end=b"\x00", limit=5)
        self.assertEqual((len(resp.kvs), resp.more, resp.count), (5, False, 5))
        resp = self.r(key=b"a", range_end=b"\x00", limit=-1)
        self.assertEqual((len(resp.kvs), resp.more), (5, False))

    def test_countOnly(self):
        resp = self.r(key=b"a", range_end=b"b", count_only=True, limit=1)
        self.assertEqual((resp.count, len(resp.kvs), resp.more), (3, 0, False))

    def test_keysOnly(self):
        resp = self.r(key=b"a", range_end=b"b", keys_only=True)
        self.assertEqual([(kv.key, kv.value, kv.version) for kv in resp.kvs],
                         [(b"a", b"", 1), (b"ab", b"", 1), (b"abc", b"", 1)])

    def test_revision(self):
        """Reads at a past revision; future is ErrFutureRev; negative means now."""
        put(self.ks, b"a", b"new")
        self.assertEqual(kvs(self.r(key=b"a", revision=2)), [(b"a", b"A")])
        self.assertEqual(kvs(self.r(key=b"a", revision=7)), [(b"a", b"new")])
        self.assertEqual(self.r(key=b"a", revision=2).header.revision, 7)
        self.assertEqual(keys(self.r(key=b"a", range_end=b"\x00", revision=3)), [b"a", b"ab"])
        self.assertRaises(errors.ErrFutureRev, self.r, key=b"a", revision=8)
        self.assertEqual(kvs(self.r(key=b"a", revision=-3)), [(b"a", b"new")])

    def test_sort(self):
        """Every target in both orders; NONE with a non-key target means ASCEND."""
        ks = KeySpace()
        for k, v in ((b"a", b"3"), (b"b", b"1"), (b"c", b"2")):
            put(ks, k, v)
        put(ks, b"b", b"9")
        put(ks, b"b", b"0")

        def order(target, sortOrder):
            return keys(ks.range(RR(key=b"a", range_end=b"\x00",
                                    sort_target=getattr(RR, target),
                                    sort_order=getattr(RR, sortOrder))))

        self.assertEqual(order("KEY", "DESCEND"), [b"c", b"b", b"a"])
        self.assertEqual(order("VALUE", "ASCEND"), [b"b", b"c", b"a"])
        self.assertEqual(order("VALUE", "NONE"), [b"b", b"c", b"a"])
        self.assertEqual(order("VERSION", "DESCEND"), [b"b", b"a", b"c"])
        self.assertEqual(order("MOD", "DESCEND"), [b"b", b"c", b"a"])
        self.assertEqual(order("CREATE", "DESCEND"), [b"c", b"b", b"a"])
        self.assertEqual(order("CREATE", "ASCEND"), [b"a", b"b", b"c"])

    def test_sortTiesKeepKeyOrder(self):
        """Equal sort keys stay in key order, both ways (Go's sort for up to 12 items)."""
        ks = KeySpace()
        for k in (b"a", b"b", b"c"):
            put(ks, k, b"same")
        for o in (RR.ASCEND, RR.DESCEND):
            resp = ks.range(RR(key=b"a", range_end=b"\x00", sort_target=RR.VALUE, sort_order=o))
            self.assertEqual(keys(resp), [b"a", b"b", b"c"])

    def test_limitBeforeDefaultSort(self):
        """
        With NONE order and a non-key target etcd takes limit+1 keys first
        and sorts those; an explicit order sorts everything.
        """
        ks = KeySpace()
        for k, n in ((b"a", 3), (b"b", 2), (b"c", 4), (b"d", 1)):
            for _ in range(n):
                put(ks, k)
        base = dict(key=b"a", range_end=b"\x00", sort_target=RR.VERSION, limit=2)
        resp = ks.range(RR(sort_order=RR.NONE, **base))
        self.assertEqual((keys(resp), resp.more), ([b"b", b"a"], True))
        resp = ks.range(RR(sort_order=RR.ASCEND, **base))
        self.assertEqual((keys(resp), resp.more), ([b"d", b"b"], True))

    def test_filters(self):
        """min/max mod/create revision filters drop pairs but not the count."""
        put(self.ks, b"a", b"again")     # a: create 2, mod 7
        base = dict(key=b"a", range_end=b"\x00")
        self.assertEqual(keys(self.r(min_mod_revision=5, **base)), [b"a", b"b", b"c"])
        self.assertEqual(keys(self.r(max_mod_revision=4, **base)), [b"ab", b"abc"])
        self.assertEqual(keys(self.r(min_create_revision=4, **base)), [b"abc", b"b", b"c"])
        self.assertEqual(keys(self.r(max_create_revision=3, **base)), [b"a", b"ab"])
        resp = self.r(min_mod_revision=6, limit=1, **base)
        self.assertEqual((keys(resp), resp.more, resp.count), ([b"a"], True, 5))


class TxnTests(SynchronousTestCase):
    """Txn: compares, branches, nested txns, revisions and errors."""

    def setUp(self):
        self.ks = KeySpace()
        put(self.ks, b"a", b"1")          # rev 2
        put(self.ks, b"b", b"2", )        # rev 3
        put(self.ks, b"a", b"11")         # rev 4: a create 2, mod 4, version 2

    def txn(self, **kw):
        return self.ks.txn(pb.TxnRequest(**kw))

    def compare(self, *compares):
        return self.txn(compare=list(compares)).response.succeeded

    def test_versionZeroForAbsent(self):
        """An absent key compares as version, create, mod and lease 0."""
        self.assertTrue(self.compare(cmp(b"x", "VERSION", "EQUAL", version=0)))
        self.assertTrue(self.compare(cmp(b"x", "CREATE", "EQUAL", create_revision=0)))
        self.assertTrue(self.compare(cmp(b"x", "MOD", "LESS", mod_revision=1)))
        self.assertTrue(self.compare(cmp(b"x", "LEASE", "EQUAL", lease=0)))
        self.assertFalse(self.compare(cmp(b"a", "VERSION", "EQUAL", version=0)))

    def test_valueOnAbsentFails(self):
        """A value compare on a missing key fails whatever the result asked."""
        for result in ("EQUAL", "NOT_EQUAL", "GREATER", "LESS"):
            self.assertFalse(self.compare(cmp(b"x", "VALUE", result, value=b"")))

    def test_compareTargets(self):
        self.assertTrue(self.compare(cmp(b"a", "VALUE", "EQUAL", value=b"11")))
        self.assertTrue(self.compare(cmp(b"a", "VALUE", "GREATER", value=b"1")))
        self.assertTrue(self.compare(cmp(b"a", "VALUE", "LESS", value=b"2")))
        self.assertTrue(self.compare(cmp(b"a", "VERSION", "EQUAL", version=2)))
        self.assertTrue(self.compare(cmp(b"a", "CREATE", "EQUAL", create_revision=2)))
        self.assertTrue(self.compare(cmp(b"a", "MOD", "EQUAL", mod_revision=4)))
        self.assertTrue(self.compare(cmp(b"a", "MOD", "NOT_EQUAL", mod_revision=2)))
        self.assertFalse(self.compare(cmp(b"a", "MOD", "GREATER", mod_revision=4)))
        self.assertTrue(self.compare(cmp(b"a", "LEASE", "EQUAL", lease=0)))

    def test_compareAllMustHold(self):
        """All compares must hold, and a range compare holds for every key in it."""
        self.assertTrue(self.compare(cmp(b"a", "VERSION", "GREATER", version=0, range_end=b"c")))
        self.assertFalse(self.compare(cmp(b"a", "VERSION", "EQUAL", version=2, range_end=b"c")))
        self.assertFalse(self.compare(cmp(b"a", "VERSION", "EQUAL", version=2),
                                      cmp(b"b", "VERSION", "EQUAL", version=2)))

    def test_compareUnionMismatch(self):
        """A target whose union member is not set compares against zero."""
        self.assertTrue(self.compare(cmp(b"a", "VERSION", "GREATER", mod_revision=99)))
        self.assertTrue(self.compare(cmp(b"a", "VALUE", "GREATER", version=5)))

    def test_branches(self):
        """The branch taken runs; each op has its response, in order."""
        resp = self.txn(compare=[cmp(b"a", "VALUE", "EQUAL", value=b"11")],
                        success=[opPut(b"c", b"3"), opRange(b"a", b"\x00")],
                        failure=[opPut(b"d", b"4")]).response
        self.assertTrue(resp.succeeded)
        self.assertEqual([r.WhichOneof("response") for r in resp.responses],
                         ["response_put", "response_range"])
        self.assertEqual(keys(resp.responses[1].response_range), [b"a", b"b", b"c"])
        resp = self.txn(compare=[cmp(b"a", "VALUE", "EQUAL", value=b"0")],
                        success=[opPut(b"c", b"3")], failure=[opPut(b"d", b"4")]).response
        self.assertFalse(resp.succeeded)
        self.assertEqual(self.ks.range(RR(key=b"d")).kvs[0].mod_revision, 6)

    def test_oneRevisionManySubs(self):
        """A txn's changes share one main revision, numbered by sub revision."""
        applied = self.txn(success=[opPut(b"x", b"1"), opDelete(b"b"), opPut(b"y", b"2")])
        self.assertEqual(applied.response.header.revision, 5)
        self.assertEqual([(e.key, e.type, e.kv.modRevision, e.kv.sub) for e in applied.events],
                         [(b"x", PUT, 5, 0), (b"b", DELETE, 5, 1), (b"y", PUT, 5, 2)])
        self.assertEqual(self.ks.revision, 5)

    def test_readOnlyKeepsRevision(self):
        """A txn that changes nothing keeps the revision: reads, or deletes of nothing."""
        applied = self.txn(success=[opRange(b"a")], failure=[opPut(b"z")])
        self.assertEqual((applied.response.header.revision, self.ks.revision), (4, 4))
        self.assertEqual(applied.events, [])
        applied = self.txn(success=[opDelete(b"nothing")])
        self.assertEqual((applied.response.header.revision, self.ks.revision), (4, 4))
        self.assertEqual(applied.response.responses[0].response_delete_range.header.revision, 4)

    def test_readsInsideSeeEarlierWrites(self):
        """
        A range in a txn sees the txn's earlier writes and reports the new
        revision once there are any, the old one before.
        """
        resp = self.txn(success=[opRange(b"a"), opPut(b"a", b"new"), opRange(b"a"),
                                 opDelete(b"x")]).response
        before, putr, after, dele = resp.responses
        self.assertEqual((kvs(before.response_range), before.response_range.header.revision),
                         ([(b"a", b"11")], 4))
        self.assertEqual(putr.response_put.header.revision, 5)
        self.assertEqual((kvs(after.response_range), after.response_range.header.revision),
                         ([(b"a", b"new")], 5))
        self.assertEqual((dele.response_delete_range.deleted,
                          dele.response_delete_range.header.revision), (0, 5))

    def test_nested(self):
        """
        A nested txn's compares are evaluated before the outer ops run; its
        response has an empty header (present) and its own ``succeeded``.
        """
        inner = dict(compare=[cmp(b"n", "VERSION", "EQUAL", version=0)],
                     success=[opPut(b"m", b"inner-yes")], failure=[opPut(b"m", b"inner-no")])
        resp = self.txn(success=[opPut(b"n", b"1"), opTxn(**inner)]).response
        nested = resp.responses[1].response_txn
        self.assertTrue(nested.succeeded)
        self.assertTrue(nested.HasField("header"))
        self.assertEqual(nested.header.ByteSize(), 0)
        self.assertEqual(nested.responses[0].response_put.header.revision, 5)
        self.assertEqual(kvs(self.ks.range(RR(key=b"m"))), [(b"m", b"inner-yes")])
        self.assertEqual(resp.header.revision, 5)

    def test_nestedFailureBranch(self):
        inner = opTxn(compare=[cmp(b"a", "VALUE", "EQUAL", value=b"nope")],
                      success=[opPut(b"s")], failure=[opPut(b"f"), opTxn(success=[opPut(b"g")])])
        resp = self.txn(failure=[inner], compare=[cmp(b"a", "VERSION", "EQUAL", version=7)])
        r = resp.response
        self.assertFalse(r.succeeded)
        nested = r.responses[0].response_txn
        self.assertFalse(nested.succeeded)
        self.assertTrue(nested.responses[1].response_txn.succeeded)
        self.assertEqual([e.key for e in resp.events], [b"f", b"g"])

    def test_emptyOp(self):
        """An empty RequestOp gets an empty ResponseOp (etcd's API refuses it first)."""
        resp = self.txn(success=[pb.RequestOp(), opPut(b"q")]).response
        self.assertEqual([r.WhichOneof("response") for r in resp.responses],
                         [None, "response_put"])

    def assertUnchanged(self, before):
        self.assertEqual(self.ks.snapshot(), before)

    def test_rangeRevisionErrors(self):
        """
        A range in the branch taken is checked against the read view: a
        future revision, a compacted one, and (as in etcd) a negative one
        below the compact revision.
        """
        before = self.ks.snapshot()
        self.assertRaises(errors.ErrFutureRev, self.txn, success=[opPut(b"x"), opRange(b"a", revision=5)])
        self.assertUnchanged(before)
        self.assertRaises(errors.ErrCompacted, self.txn, success=[opRange(b"a", revision=-2)])
        self.ks.compact(pb.CompactionRequest(revision=3))
        before = self.ks.snapshot()
        self.assertRaises(errors.ErrCompacted, self.txn, success=[opPut(b"x"), opRange(b"a", revision=2)])
        self.assertUnchanged(before)
        self.txn(success=[opRange(b"a", revision=3)])
        self.txn(failure=[opRange(b"a", revision=2)])   # branch not taken: not checked

    def test_putErrors(self):
        """Unknown lease and ignore_value on a missing key fail the whole txn."""
        before = self.ks.snapshot()
        self.assertRaises(errors.ErrLeaseNotFound, self.txn, success=[opPut(b"x"), opPut(b"y", lease=9)])
        self.assertRaises(errors.ErrKeyNotFound, self.txn,
                          success=[opPut(b"x"), opTxn(success=[opPut(b"y", ignore_value=True)])])
        self.assertUnchanged(before)

    def test_putChecksFirst(self):
        """All put checks run before any range check (etcd's order)."""
        self.assertRaises(errors.ErrLeaseNotFound, self.txn,
                          success=[opRange(b"a", revision=99), opPut(b"y", lease=9)])

    def test_rollbackHalfway(self):
        """
        A request that fails halfway (a delete, then ignore_value on the key
        it deleted: etcd panics there) changes nothing.
        """
        self.ks.leaseGrant(pb.LeaseGrantRequest(ID=1, TTL=100))
        put(self.ks, b"a", b"leased", lease=1)
        before = self.ks.snapshot()
        lease = self.ks.lease(1)
        self.assertRaises(errors.ErrKeyNotFound, self.txn,
                          success=[opPut(b"new", lease=1), opDelete(b"a"),
                                   opPut(b"a", ignore_value=True)])
        self.assertUnchanged(before)
        self.assertEqual(self.ks.lease(1), lease)
        self.assertEqual(self.ks.range(RR(key=b"new")).count, 0)


class CompactionTests(SynchronousTestCase):

    def setUp(self):
        self.ks = KeySpace()
        put(self.ks, b"a", b"1")    # 2
        put(self.ks, b"a", b"2")    # 3
        put(self.ks, b"b", b"1")    # 4
        delete(self.ks, b"b")       # 5
        put(self.ks, b"a", b"3")    # 6

    def compact(self, rev):
        return self.ks.compact(pb.CompactionRequest(revision=rev))

    def test_errors(self):
        """A future revision, then the same or an older one again."""
        self.assertRaises(errors.ErrFutureRev, self.compact, 7)
        applied = self.compact(4)
        self.assertEqual((applied.response.header.revision, applied.events), (6, ()))
        self.assertRaises(errors.ErrCompacted, self.compact, 4)
        self.assertRaises(errors.ErrCompacted, self.compact, 3)
        self.assertEqual((self.ks.revision, self.ks.compactRevision), (6, 4))

    def test_errorMessages(self):
        """The messages and codes etcd's clients print."""
        self.compact(3)
        try:
            self.ks.range(RR(key=b"a", revision=2))
        except errors.EtcdError as e:
            self.assertEqual(str(e), "etcdserver: mvcc: required revision has been compacted")
            self.assertEqual(e.code, errors.Code.OUT_OF_RANGE)
        else:
            self.fail("no error")
        try:
            self.ks.range(RR(key=b"a", revision=9))
        except errors.ErrFutureRev as e:
            self.assertEqual(e.message, "etcdserver: mvcc: required revision is a future revision")

    def test_historyKept(self):
        """Reads at or after the compact revision see what they saw before."""
        views = {rev: kvs(self.ks.range(RR(key=b"\x00", range_end=b"\x00", revision=rev)))
                 for rev in range(1, 7)}
        self.compact(4)
        for rev in range(4, 7):
            self.assertEqual(kvs(self.ks.range(RR(key=b"\x00", range_end=b"\x00", revision=rev))),
                             views[rev])
        self.assertRaises(errors.ErrCompacted, self.ks.range, RR(key=b"a", revision=3))

    def test_tombstoneGone(self):
        """Compacting at or after a delete forgets the key; a new put creates it afresh."""
        self.compact(5)
        self.assertEqual(self.ks.range(RR(key=b"b", revision=5)).count, 0)
        events, _ = self.ks.eventsSince(b"b", b"", 5)
        self.assertEqual(events, [])
        put(self.ks, b"b", b"again")
        kv = self.ks.range(RR(key=b"b")).kvs[0]
        self.assertEqual((kv.create_revision, kv.version), (7, 1))

    def test_compactAtCurrent(self):
        """Compacting at the current revision keeps every live key."""
        self.compact(6)
        self.assertEqual(kvs(self.ks.range(RR(key=b"\x00", range_end=b"\x00"))), [(b"a", b"3")])
        kv = self.ks.range(RR(key=b"a")).kvs[0]
        self.assertEqual((kv.create_revision, kv.version), (2, 3))
        self.assertRaises(errors.ErrCompacted, self.compact, 6)


class WatchEventTests(SynchronousTestCase):
    """Events of applied writes, and catching up from history."""

    def test_writeEvents(self):
        """PUT with kv and prev (none for a create); DELETE with a key+revision kv."""
        ks = KeySpace()
        [e1] = put(ks, b"a", b"1").events
        self.assertEqual((e1.type, e1.kv.value, e1.prevKv), (PUT, b"1", None))
        [e2] = put(ks, b"a", b"2").events
        self.assertEqual((e2.type, e2.prevKv.value), (PUT, b"1"))
        [e3] = delete(ks, b"a").events
        self.assertEqual((e3.type, e3.prevKv.value, e3.revision), (DELETE, b"2", 4))
        self.assertEqual(e3.toProto(prevKv=False),
                         kv_pb2.Event(type=DELETE, kv=kv_pb2.KeyValue(key=b"a", mod_revision=4)))
        withPrev = e3.toProto(prevKv=True)
        self.assertEqual(withPrev.prev_kv.value, b"2")
        self.assertEqual(e2.toProto().kv, kv_pb2.KeyValue(
            key=b"a", value=b"2", create_revision=2, mod_revision=3, version=2))

    def test_eventsSince(self):
        """History from a revision on, for one key, a range and a prefix."""
        ks = KeySpace()
        put(ks, b"a", b"1")                                    # 2
        put(ks, b"b", b"1")                                    # 3
        ks.txn(pb.TxnRequest(success=[opPut(b"a", b"2"), opPut(b"c", b"1")]))  # 4
        delete(ks, b"b")                                       # 5
        events, nxt = ks.eventsSince(b"a", b"", 2)
        self.assertEqual([(e.revision, e.kv.value) for e in events], [(2, b"1"), (4, b"2")])
        self.assertEqual(nxt, 6)
        events, _ = ks.eventsSince(b"b", b"\x00", 3)
        self.assertEqual([(e.key, e.type, e.revision) for e in events],
                         [(b"b", PUT, 3), (b"c", PUT, 4), (b"b", DELETE, 5)])
        self.assertEqual(events[2].prevKv.value, b"1")
        events, _ = ks.eventsSince(b"a", b"c", 4)
        self.assertEqual([(e.key, e.revision) for e in events], [(b"a", 4), (b"b", 5)])
        self.assertEqual(ks.eventsSince(b"a", b"", 6), ([], 6))

    def test_maxEvents(self):
        """A bounded scan stops after a whole revision."""
        ks = KeySpace()
        put(ks, b"a")                                                       # 2
        ks.txn(pb.TxnRequest(success=[opPut(b"b"), opPut(b"c"), opPut(b"a")]))  # 3
        put(ks, b"d")                                                       # 4
        events, nxt = ks.eventsSince(b"a", b"\x00", 2, maxEvents=2)
        self.assertEqual(([e.revision for e in events], nxt), ([2, 3, 3, 3], 4))
        events, nxt = ks.eventsSince(b"a", b"\x00", nxt, maxEvents=2)
        self.assertEqual(([e.revision for e in events], nxt), ([4], 5))
        events, nxt = ks.eventsSince(b"a", b"", 2, maxEvents=1)
        self.assertEqual(([e.revision for e in events], nxt), ([2], 3))

    def test_compacted(self):
        """Below the compact revision a watch is compacted; at it, it gets what is kept."""
        ks = KeySpace()
        put(ks, b"a", b"1")
        put(ks, b"a", b"2")
        ks.compact(pb.CompactionRequest(revision=3))
        self.assertRaises(errors.ErrCompacted, ks.eventsSince, b"a", b"", 2)
        events, _ = ks.eventsSince(b"a", b"", 3)
        self.assertEqual([(e.revision, e.kv.value, e.prevKv) for e in events], [(3, b"2", None)])


class ApplyTests(SynchronousTestCase):
    """etcd's InternalRaftRequest, dispatched."""

    def test_dispatch(self):
        ks = KeySpace()
        IRR = raft_internal_pb2.InternalRaftRequest
        applied = ks.apply(IRR(put=pb.PutRequest(key=b"a", value=b"1")))
        self.assertEqual(applied.response.header.revision, 2)
        self.assertEqual(kvs(ks.apply(IRR(range=RR(key=b"a"))).response), [(b"a", b"1")])
        self.assertTrue(ks.apply(IRR(txn=pb.TxnRequest())).response.succeeded)
        ks.apply(IRR(lease_grant=pb.LeaseGrantRequest(ID=3, TTL=10)))
        ks.apply(IRR(lease_checkpoint=pb.LeaseCheckpointRequest(
            checkpoints=[pb.LeaseCheckpoint(ID=3, remaining_TTL=4)])))
        self.assertEqual(ks.lease(3).remainingTTL, 4)
        ks.apply(IRR(lease_revoke=pb.LeaseRevokeRequest(ID=3)))
        self.assertIsNone(ks.lease(3))
        self.assertEqual(ks.apply(IRR(delete_range=pb.DeleteRangeRequest(key=b"a"))).response.deleted, 1)
        ks.apply(IRR(compaction=pb.CompactionRequest(revision=3)))
        self.assertEqual(ks.compactRevision, 3)
        self.assertIsNone(ks.apply(IRR(alarm=pb.AlarmRequest())))
        self.assertIsNone(ks.apply(IRR()))

    def test_etcdBytes(self):
        """A put as etcd writes it in its log (bytes from a Go program) applies."""
        data = bytes.fromhex("220a0a03666f6f1203626172a2060a0888ef99abc5e88c9111")
        ks = KeySpace()
        ks.apply(raft_internal_pb2.InternalRaftRequest.FromString(data))
        self.assertEqual(kvs(ks.range(RR(key=b"foo"))), [(b"foo", b"bar")])

    def test_consistentIndex(self):
        ks = KeySpace()
        self.assertEqual(ks.consistentIndex, 0)
        ks.setConsistentIndex(42)
        other = KeySpace()
        other.restore(ks.snapshot())
        self.assertEqual(other.consistentIndex, 42)


class RecordTests(SynchronousTestCase):

    def test_equality(self):
        a = Record(b"k", b"v", 2, 3, 0, 2, 0)
        self.assertEqual(a, Record(b"k", b"v", 2, 3, 0, 2, 0))
        self.assertNotEqual(a, Record(b"k", b"w", 2, 3, 0, 2, 0))
        self.assertEqual(len({a, Record(b"k", b"v", 2, 3, 0, 2, 0)}), 1)
        self.assertFalse(a.isTombstone)
        self.assertTrue(Record(b"k", b"", 0, 3, 0, 0, 0).isTombstone)
        self.assertIn("deleted", repr(Record(b"k", b"", 0, 3, 0, 0, 0)))

    def test_stored(self):
        """A tombstone is stored as its key alone."""
        self.assertEqual(Record(b"k", b"", 0, 3, 1, 0, 0).stored(), kv_pb2.KeyValue(key=b"k"))
        live = Record(b"k", b"v", 2, 3, 0, 2, 7)
        self.assertEqual(live.stored(), live.toProto())
        self.assertEqual(live.toProto(keysOnly=True).value, b"")


class ErrorTests(SynchronousTestCase):

    def test_table(self):
        """Codes and messages as rpctypes has them; a message finds its class."""
        self.assertEqual((errors.ErrLeaseNotFound.code, errors.ErrLeaseNotFound.message),
                         (errors.Code.NOT_FOUND, "etcdserver: requested lease not found"))
        self.assertEqual(errors.ErrRequestTooLarge.code, errors.Code.INVALID_ARGUMENT)
        self.assertEqual(errors.ErrCorrupt.code, 15)
        self.assertIs(errors.ERRORS["etcdserver: too many operations in txn request"],
                      errors.ErrTooManyOps)
        self.assertEqual(str(errors.ErrNoLeader()), "etcdserver: no leader")
        self.assertEqual(str(errors.ErrNoLeader("other")), "other")
        self.assertTrue(issubclass(errors.ErrCompacted, errors.EtcdError))
        self.assertIn("ErrDuplicateKey", errors.__all__)
