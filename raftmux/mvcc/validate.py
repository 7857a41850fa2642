# -*- test-case-name: raftmux.test.test_mvcc_validate -*-
"""
What etcd's gRPC layer refuses before a request reaches raft
(``etcdserver/api/v3rpc/key.go``), and the read-only tests its server uses
to decide whether a Txn needs raft at all (``etcdserver/v3_server.go``).

The key space applies whatever the log holds, as etcd's applier does;
these checks belong in front of the proposal, where a refusal costs
nothing and the client hears ``InvalidArgument``.
"""

from raftmux.mvcc.errors import (
    ErrDuplicateKey,
    ErrEmptyKey,
    ErrKeyNotFound,
    ErrLeaseProvided,
    ErrTooManyOps,
    ErrValueProvided,
)

__all__ = [
    "DEFAULT_MAX_TXN_OPS", "checkRangeRequest", "checkPutRequest",
    "checkDeleteRequest", "checkTxnRequest", "checkIntervals", "checkTxn",
    "isTxnReadonly", "isTxnSerializable",
]

#: etcd's --max-txn-ops default.
DEFAULT_MAX_TXN_OPS = 128


def checkRangeRequest(request):
    if not request.key:
        raise ErrEmptyKey()


def checkPutRequest(request):
    if not request.key:
        raise ErrEmptyKey()
    if request.ignore_value and request.value:
        raise ErrValueProvided()
    if request.ignore_lease and request.lease != 0:
        raise ErrLeaseProvided()


def checkDeleteRequest(request):
    if not request.key:
        raise ErrEmptyKey()


def _checkRequestOp(op, maxTxnOps):
    kind = op.WhichOneof("request")
    if kind == "request_range":
        checkRangeRequest(op.request_range)
    elif kind == "request_put":
        checkPutRequest(op.request_put)
    elif kind == "request_delete_range":
        checkDeleteRequest(op.request_delete_range)
    elif kind == "request_txn":
        checkTxnRequest(op.request_txn, maxTxnOps)
    else:
        # An empty RequestOp: etcd answers "key not found".
        raise ErrKeyNotFound()


def checkTxnRequest(request, maxTxnOps=DEFAULT_MAX_TXN_OPS):
    """
    At most ``maxTxnOps`` compares and ops per branch (a nested txn gets
    what its parent left), no empty key anywhere, no empty op.
    """
    opc = max(len(request.compare), len(request.success), len(request.failure))
    if opc > maxTxnOps:
        raise ErrTooManyOps()
    for c in request.compare:
        if not c.key:
            raise ErrEmptyKey()
    for op in request.success:
        _checkRequestOp(op, maxTxnOps - opc)
    for op in request.failure:
        _checkRequestOp(op, maxTxnOps - opc)


# -- intervals, as etcd's adt package compares strings: "" is +infinity ----

def _affine(a, b):
    if not a:
        return 0 if not b else 1
    if not b:
        return -1
    return (a > b) - (a < b)


def _overlaps(a, b):
    """etcd's ``Interval.Compare(a, b) == 0`` for half-open ``(begin, end)``."""
    if _affine(a[0], b[0]) < 0 and _affine(a[1], b[0]) <= 0:
        return False
    return _affine(a[0], b[1]) < 0


def _point(key):
    return (key, key + b"\x00")


_ALL = (b"\x00", b"")


def _intersects(dels, key):
    p = _point(key)
    return any(_overlaps(p, d) for d in dels)


def checkIntervals(ops):
    """
    ``(puts, dels)`` of a branch (put keys; delete intervals), or
    ``ErrDuplicateKey`` when a put meets another put or a delete of the
    same branch or of a nested txn.  Puts in the two branches of one nested
    txn may share a key: only one branch runs.
    """
    dels = []
    for op in ops:
        if op.WhichOneof("request") != "request_delete_range":
            continue
        d = op.request_delete_range
        if d.range_end:
            dels.append((d.key, d.range_end))
        else:
            dels.append(_point(d.key))

    puts = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        putsThen, delsThen = checkIntervals(op.request_txn.success)
        putsElse, delsElse = checkIntervals(op.request_txn.failure)
        for k in putsThen:
            if k in puts or _intersects(dels, k):
                raise ErrDuplicateKey()
            puts.add(k)
        for k in putsElse:
            if k in puts and k not in putsThen:
                raise ErrDuplicateKey()
            if _intersects(dels, k):
                raise ErrDuplicateKey()
            puts.add(k)
        dels.extend(d for d in delsThen if _overlaps(_ALL, d))
        dels.extend(d for d in delsElse if _overlaps(_ALL, d))

    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or _intersects(dels, k):
            raise ErrDuplicateKey()
        puts.add(k)
    return puts, dels


def checkTxn(request, maxTxnOps=DEFAULT_MAX_TXN_OPS):
    """Everything etcd's ``kvServer.Txn`` checks, in its order."""
    checkTxnRequest(request, maxTxnOps)
    checkIntervals(request.success)
    checkIntervals(request.failure)


def isTxnReadonly(request):
    """True when both branches hold only ranges (no raft round needed)."""
    for op in request.success:
        if op.WhichOneof("request") != "request_range":
            return False
    for op in request.failure:
        if op.WhichOneof("request") != "request_range":
            return False
    return True


def isTxnSerializable(request):
    """True when every op of both branches is a serializable range."""
    for op in list(request.success) + list(request.failure):
        if op.WhichOneof("request") != "request_range" or not op.request_range.serializable:
            return False
    return True
