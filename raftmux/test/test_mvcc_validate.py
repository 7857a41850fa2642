# -*- test-case-name: raftmux.test.test_mvcc_validate -*-
"""
L{raftmux.mvcc.validate}: the checks of etcd's
``etcdserver/api/v3rpc/key.go`` and the read-only tests of ``v3_server.go``.
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import errors, validate


def put(key, **kw):
    return pb.RequestOp(request_put=pb.PutRequest(key=key, **kw))


def rng(key, **kw):
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, **kw))


def dele(key, end=b""):
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end))


def txn(**kw):
    return pb.RequestOp(request_txn=pb.TxnRequest(**kw))


class SingleRequestTests(SynchronousTestCase):

    def test_emptyKey(self):
        self.assertRaises(errors.ErrEmptyKey, validate.checkRangeRequest, pb.RangeRequest())
        self.assertRaises(errors.ErrEmptyKey, validate.checkPutRequest, pb.PutRequest())
        self.assertRaises(errors.ErrEmptyKey, validate.checkDeleteRequest,
                          pb.DeleteRangeRequest(range_end=b"z"))
        validate.checkRangeRequest(pb.RangeRequest(key=b"a"))

    def test_putIgnore(self):
        self.assertRaises(errors.ErrValueProvided, validate.checkPutRequest,
                          pb.PutRequest(key=b"a", value=b"v", ignore_value=True))
        self.assertRaises(errors.ErrLeaseProvided, validate.checkPutRequest,
                          pb.PutRequest(key=b"a", lease=-1, ignore_lease=True))
        validate.checkPutRequest(pb.PutRequest(key=b"a", ignore_value=True, ignore_lease=True))


class TxnTests(SynchronousTestCase):

    def check(self, maxTxnOps=validate.DEFAULT_MAX_TXN_OPS, **kw):
        validate.checkTxn(pb.TxnRequest(**kw), maxTxnOps)

    def test_tooManyOps(self):
        """Compares and each branch count separately against the limit."""
        self.check(maxTxnOps=2, compare=[pb.Compare(key=b"a")] * 2,
                   success=[put(b"a"), put(b"b")], failure=[put(b"c"), put(b"d")])
        self.assertRaises(errors.ErrTooManyOps, self.check, maxTxnOps=2,
                          success=[put(b"a"), put(b"b"), put(b"c")])
        self.assertRaises(errors.ErrTooManyOps, self.check, maxTxnOps=2,
                          compare=[pb.Compare(key=b"a")] * 3)

    def test_nestedBudget(self):
        """A nested txn gets the budget its parent's widest list left."""
        self.check(maxTxnOps=3, success=[txn(success=[put(b"a"), put(b"b")])])
        self.assertRaises(errors.ErrTooManyOps, self.check, maxTxnOps=3,
                          success=[put(b"x"), txn(success=[put(b"a"), put(b"b")])])

    def test_emptyKeys(self):
        self.assertRaises(errors.ErrEmptyKey, self.check, compare=[pb.Compare()])
        self.assertRaises(errors.ErrEmptyKey, self.check, failure=[rng(b"")])
        self.assertRaises(errors.ErrEmptyKey, self.check, success=[txn(success=[put(b"")])])

    def test_emptyOp(self):
        self.assertRaises(errors.ErrKeyNotFound, self.check, success=[pb.RequestOp()])

    def test_duplicates(self):
        """Two puts of a key, or a put inside a delete, in one branch."""
        self.assertRaises(errors.ErrDuplicateKey, self.check, success=[put(b"a"), put(b"a")])
        self.assertRaises(errors.ErrDuplicateKey, self.check, success=[put(b"b"), dele(b"a", b"c")])
        self.assertRaises(errors.ErrDuplicateKey, self.check, success=[dele(b"b"), put(b"b")])
        self.check(success=[put(b"a")], failure=[put(b"a")])
        self.check(success=[put(b"c"), dele(b"a", b"c")])
        self.check(success=[dele(b"a"), dele(b"a", b"z")])

    def test_nestedDuplicates(self):
        """
        A nested put meets the outer puts and deletes; the two branches of
        one nested txn may share keys; an outer put meets nested deletes.
        """
        self.check(success=[txn(success=[put(b"a")], failure=[put(b"a")])])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[put(b"a"), txn(success=[put(b"a")])])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[dele(b"a", b"b"), txn(failure=[put(b"a")])])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[txn(success=[dele(b"a")]), put(b"a")])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[txn(success=[put(b"a")]), txn(failure=[put(b"a")])])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[txn(success=[dele(b"a")]), txn(success=[put(b"a")])])
        # etcd checks a nested txn's puts before it learns a later one's deletes
        self.check(success=[txn(success=[put(b"a")]), txn(success=[dele(b"a")])])

    def test_fromKeyDeleteQuirk(self):
        """
        etcd reads a from-key delete (range_end "\\0") as the interval
        [key, "\\0"), which holds no key: a put beside it passes.
        """
        self.check(success=[dele(b"a", b"\x00"), put(b"b")])
        self.check(success=[dele(b"\x00", b"\x00"), put(b"\x00")])
        self.assertRaises(errors.ErrDuplicateKey, self.check,
                          success=[dele(b"a", b"z"), put(b"b")])

    def test_readonly(self):
        request = pb.TxnRequest(success=[rng(b"a")], failure=[rng(b"b", serializable=True)])
        self.assertTrue(validate.isTxnReadonly(request))
        self.assertFalse(validate.isTxnSerializable(request))
        request.success[0].request_range.serializable = True
        self.assertTrue(validate.isTxnSerializable(request))
        self.assertFalse(validate.isTxnReadonly(pb.TxnRequest(failure=[txn()])))
        self.assertFalse(validate.isTxnReadonly(pb.TxnRequest(success=[put(b"a")])))
        self.assertTrue(validate.isTxnReadonly(pb.TxnRequest()))
