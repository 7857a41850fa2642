# -*- test-case-name: raftmux.test.test_mvcc_keyspace -*-
"""
etcd v3.4's MVCC key space as a sans-IO state machine.

Semantics are etcd's ``mvcc`` store and ``etcdserver/apply.go``: one main
revision per applied write that changes something (sub revisions number
the changes inside it), create and mod revision and version per key,
tombstones, history kept until a compaction, leases holding keys.  The
store starts at revision 1 with nothing compacted (compact revision -1).

Layout (all in memory; the node rebuilds it from a raft snapshot and the
log):

* per key, its history: a list of L{Record}s in revision order.  Each
  record carries its create revision and version, so "the key at revision
  R" is the last record with ``modRevision <= R`` unless that one is a
  tombstone (etcd's generations, flattened);
* a sorted list of the keys that have a history, for ranges;
* the revision log: for each main revision from the compact revision on,
  the records it wrote, in sub order (watchers catching up read it);
* the set of keys whose history a compaction can shorten, so compacting
  costs the keys written since, not the whole key space;
* the lease table (L{raftmux.mvcc.leases}).

Every write method returns L{Applied}: the response message (header
``revision`` filled in; the API layer adds cluster/member ID and term) and
the L{Event}s the write produced, in order, for the watch hub.  Errors are
L{raftmux.mvcc.errors} classes raised before anything changes: a failed
request leaves the key space as it was.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import namedtuple
from operator import attrgetter
from typing import Any

from sortedcontainers import SortedList

from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc import hashing, snapshot
from raftmux.mvcc.errors import (
    ErrCompacted,
    ErrFutureRev,
    ErrKeyNotFound,
    ErrLeaseExist,
    ErrLeaseNotFound,
    ErrLeaseTTLTooLarge,
)
from raftmux.mvcc.leases import DEFAULT_MIN_LEASE_TTL, MAX_LEASE_TTL, Lease, LeaseInfo
from raftmux.mvcc.record import DELETE, PUT, Event, Record

__all__ = ["KeySpace", "Applied", "rangeEnd"]

_MOD = attrgetter("modRevision")

_RangeRequest = rpc_pb2.RangeRequest
_NONE, _ASCEND, _DESCEND = (
    _RangeRequest.NONE, _RangeRequest.ASCEND, _RangeRequest.DESCEND)
_SORT_KEYS = {
    _RangeRequest.KEY: attrgetter("key"),
    _RangeRequest.VERSION: attrgetter("version"),
    _RangeRequest.CREATE: attrgetter("createRevision"),
    _RangeRequest.MOD: attrgetter("modRevision"),
    _RangeRequest.VALUE: attrgetter("value"),
}

_Compare = rpc_pb2.Compare
_COMPARE_FIELDS = {
    _Compare.VERSION: ("version", "version"),
    _Compare.CREATE: ("create_revision", "createRevision"),
    _Compare.MOD: ("mod_revision", "modRevision"),
    _Compare.LEASE: ("lease", "lease"),
}
_EMPTY = Record(b"", b"", 0, 0, 0, 0, 0)


class Applied(namedtuple("Applied", "response events")):
    """
    What applying a request gave: ``response`` (the etcd response message,
    ``header.revision`` set) and ``events`` (L{Event}s, in revision order;
    empty when nothing changed).
    """


def rangeEnd(rangeEnd):
    """
    A request's ``range_end`` as the key space reads it: ``None`` for one
    key (empty), ``b""`` for every key from ``key`` on (``b"\\0"``), else
    the exclusive end.
    """
    if not rangeEnd:
        return None
    if rangeEnd == b"\x00":
        return b""
    return rangeEnd


class _Write:
    """One write transaction in progress: its main revision and changes."""

    __slots__ = ("main", "changes", "events")

    def __init__(self, main):
        self.main = main
        self.changes = []
        self.events = []

    @property
    def readRevision(self):
        """The revision a read inside this write sees (its own changes too)."""
        return self.main if self.changes else self.main - 1


class KeySpace:
    """
    etcd's key space.  ``minLeaseTTL`` is the shortest TTL a grant gets
    (etcd derives it from its election timeout; 2 s with default flags).
    """

    def __init__(self, minLeaseTTL: int = DEFAULT_MIN_LEASE_TTL) -> None:
        self._minLeaseTTL = minLeaseTTL
        self._load(1, -1, 0, [], [])

    def _load(self, revision, compactRevision, consistentIndex, leases, records):
        """Replace the whole state; ``records`` in revision order."""
        self._rev = revision
        self._compactRev = compactRevision
        self._consistentIndex = consistentIndex
        self._leases = {lease.id: lease for lease in leases}
        history: dict[Any, Any] = {}
        for r in records:
            h = history.get(r.key)
            if h is None:
                history[r.key] = [r]
            else:
                h.append(r)
        self._history = history
        self._keys = SortedList(history)
        self._logStart = max(2, compactRevision)
        self._log: list[list[Record]] = [[] for _ in range(self._logStart, revision + 1)]
        start = self._logStart
        for r in records:
            if r.modRevision >= start:
                self._log[r.modRevision - start].append(r)
        self._compactable = set()
        for key, h in history.items():
            last = h[-1]
            if len(h) > 1 or last.createRevision == 0:
                self._compactable.add(key)
            if last.createRevision and last.lease:
                lease = self._leases.get(last.lease)
                if lease is not None:
                    lease.keys.add(key)

    # -- state ---------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the last write that changed something."""
        return self._rev

    @property
    def compactRevision(self) -> int:
        """The revision of the last compaction, -1 before the first."""
        return self._compactRev

    @property
    def consistentIndex(self) -> int:
        """The raft index of the last applied entry, as the node reported it."""
        return self._consistentIndex

    def setConsistentIndex(self, index: int) -> None:
        """Note the raft index just applied; snapshots carry it."""
        self._consistentIndex = index

    # -- reading -------------------------------------------------------------

    def _get(self, key, atRev):
        """The live record of ``key`` at ``atRev``, or None."""
        h = self._history.get(key)
        if h is None:
            return None
        r = h[-1]
        if r.modRevision > atRev:
            i = bisect_right(h, atRev, key=_MOD) - 1
            if i < 0:
                return None
            r = h[i]
        return r if r.createRevision else None

    def _records(self, key, end, atRev):
        """The live records in ``[key, end)`` at ``atRev`` (see L{rangeEnd})."""
        if end is None:
            r = self._get(key, atRev)
            return [r] if r is not None else []
        if end:
            if end <= key:
                return []
            keys = self._keys.irange(key, end, (True, False))
        else:
            keys = self._keys.irange(key)
        history = self._history
        out: list[Any] = []
        append = out.append
        for k in keys:
            h = history[k]
            r = h[-1]
            if r.modRevision > atRev:
                i = bisect_right(h, atRev, key=_MOD) - 1
                if i < 0:
                    continue
                r = h[i]
            if r.createRevision:
                append(r)
        return out

    def _rangeInto(self, r, curRev, resp):
        """etcd's ``applierV3backend.Range`` reading at ``curRev``."""
        atRev = r.revision
        if atRev > curRev:
            raise ErrFutureRev()
        if atRev <= 0:
            atRev = curRev
        if atRev < self._compactRev:
            raise ErrCompacted()
        records = self._records(r.key, rangeEnd(r.range_end), atRev)
        count = len(records)
        resp.header.revision = curRev
        resp.count = count
        if r.count_only or not records:
            return resp
        order, target = r.sort_order, r.sort_target
        limit = r.limit
        filtered = (r.min_mod_revision or r.max_mod_revision or
                    r.min_create_revision or r.max_create_revision)
        if order == _NONE and not filtered and limit > 0:
            records = records[:limit + 1]
        if filtered:
            if r.max_mod_revision:
                records = [x for x in records if x.modRevision <= r.max_mod_revision]
            if r.min_mod_revision:
                records = [x for x in records if x.modRevision >= r.min_mod_revision]
            if r.max_create_revision:
                records = [x for x in records if x.createRevision <= r.max_create_revision]
            if r.min_create_revision:
                records = [x for x in records if x.createRevision >= r.min_create_revision]
        if target != _RangeRequest.KEY and order == _NONE:
            order = _ASCEND
        if order == _ASCEND or order == _DESCEND:
            sortKey = _SORT_KEYS.get(target)
            if sortKey is not None:
                records.sort(key=sortKey, reverse=order == _DESCEND)
        if limit > 0 and len(records) > limit:
            records = records[:limit]
            resp.more = True
        add = resp.kvs.add
        if r.keys_only:
            for x in records:
                add(key=x.key, create_revision=x.createRevision,
                    mod_revision=x.modRevision, version=x.version, lease=x.lease)
        else:
            for x in records:
                add(key=x.key, create_revision=x.createRevision,
                    mod_revision=x.modRevision, version=x.version, value=x.value,
                    lease=x.lease)
        return resp

    def range(self, request: Any) -> Any:
        """A ``RangeRequest`` answered at the current revision: ``RangeResponse``."""
        return self._rangeInto(request, self._rev, rpc_pb2.RangeResponse())

    def get(self, key: bytes, revision: int = 0) -> Record | None:
        """The live L{Record} of ``key`` at ``revision`` (0: now), or None."""
        if revision > self._rev:
            raise ErrFutureRev()
        if revision <= 0:
            revision = self._rev
        if revision < self._compactRev:
            raise ErrCompacted()
        return self._get(key, revision)

    # -- writing -------------------------------------------------------------

    def _begin(self):
        return _Write(self._rev + 1)

    def _commit(self, w):
        if w.changes:
            self._rev = w.main
            self._log.append(w.changes)
        return w.events

    def _rollback(self, w):
        """Undo the changes of ``w`` (a request failed halfway)."""
        for r in reversed(w.changes):
            h = self._history[r.key]
            h.pop()
            if r.createRevision and r.lease:
                self._detach(r.lease, r.key)
            if h:
                last = h[-1]
                if last.createRevision and last.lease:
                    self._attach(last.lease, r.key)
            else:
                del self._history[r.key]
                self._keys.remove(r.key)
        w.changes = []
        w.events = []

    def _attach(self, leaseID, key):
        lease = self._leases.get(leaseID)
        if lease is not None:
            lease.keys.add(key)

    def _detach(self, leaseID, key):
        lease = self._leases.get(leaseID)
        if lease is not None:
            lease.keys.discard(key)

    def _before(self, h, main):
        """The live record of history ``h`` before revision ``main``, or None."""
        for i in range(len(h) - 1, -1, -1):
            r = h[i]
            if r.modRevision < main:
                return r if r.createRevision else None
        return None

    def _put(self, w, key, value, leaseID):
        main = w.main
        h = self._history.get(key)
        if h is None:
            h = self._history[key] = []
            self._keys.add(key)
            last = None
        else:
            last = h[-1]
            self._compactable.add(key)
        if last is not None and last.createRevision:
            create, version, oldLease = last.createRevision, last.version + 1, last.lease
        else:
            create, version, oldLease = main, 1, 0
        rec = Record(key, value, create, main, len(w.changes), version, leaseID)
        h.append(rec)
        w.changes.append(rec)
        if oldLease:
            self._detach(oldLease, key)
        if leaseID:
            self._leases[leaseID].keys.add(key)
        prev = None if version == 1 else (
            last if last.modRevision < main else self._before(h, main))  # type: ignore[union-attr]
        w.events.append(Event(PUT, rec, prev))

    def _delete(self, w, key):
        main = w.main
        h = self._history[key]
        last = h[-1]
        rec = Record(key, b"", 0, main, len(w.changes), 0, 0)
        h.append(rec)
        w.changes.append(rec)
        self._compactable.add(key)
        if last.lease:
            self._detach(last.lease, key)
        prev = last if last.modRevision < main else self._before(h, main)
        w.events.append(Event(DELETE, rec, prev))

    def _putInto(self, w, p, resp, topLevel=False):
        """etcd's ``applierV3backend.Put``; ``resp`` a ``PutResponse``."""
        leaseID = p.lease
        if topLevel and leaseID and leaseID not in self._leases:
            raise ErrLeaseNotFound()
        prev = None
        if p.ignore_value or p.ignore_lease or p.prev_kv:
            prev = self._get(p.key, w.readRevision)
        if p.ignore_value or p.ignore_lease:
            if prev is None:
                raise ErrKeyNotFound()
        value = prev.value if p.ignore_value else p.value  # type: ignore[union-attr]
        if p.ignore_lease:
            leaseID = prev.lease  # type: ignore[union-attr]
        if p.prev_kv and prev is not None:
            prev.fill(resp.prev_kv)
        self._put(w, p.key, value, leaseID)
        resp.header.revision = w.main
        return resp

    def _deleteRangeInto(self, w, d, resp):
        """etcd's ``applierV3backend.DeleteRange``; ``resp`` a ``DeleteRangeResponse``."""
        records = self._records(d.key, rangeEnd(d.range_end), w.readRevision)
        if d.prev_kv:
            add = resp.prev_kvs.add
            for r in records:
                add(key=r.key, create_revision=r.createRevision,
                    mod_revision=r.modRevision, version=r.version, value=r.value,
                    lease=r.lease)
        for r in records:
            self._delete(w, r.key)
        resp.deleted = len(records)
        resp.header.revision = w.main if (records or w.changes) else w.main - 1
        return resp

    def put(self, request: Any) -> Applied:
        """A ``PutRequest``: L{Applied} with a ``PutResponse``."""
        w = self._begin()
        resp = self._putInto(w, request, rpc_pb2.PutResponse(), topLevel=True)
        return Applied(resp, self._commit(w))

    def deleteRange(self, request: Any) -> Applied:
        """A ``DeleteRangeRequest``: L{Applied} with a ``DeleteRangeResponse``."""
        w = self._begin()
        resp = self._deleteRangeInto(w, request, rpc_pb2.DeleteRangeResponse())
        return Applied(resp, self._commit(w))

    # -- transactions --------------------------------------------------------

    def _compare(self, c):
        """etcd's ``applyCompare`` against the current revision."""
        records = self._records(c.key, rangeEnd(c.range_end), self._rev)
        target = c.target
        if not records:
            if target == _Compare.VALUE:
                return False
            records = [_EMPTY]
        union = c.WhichOneof("target_union")
        if target == _Compare.VALUE:
            want = c.value if union == "value" else b""
            attr = "value"
        elif target in _COMPARE_FIELDS:
            field, attr = _COMPARE_FIELDS[target]
            want = getattr(c, field) if union == field else 0
        else:
            attr = None
        result = c.result
        for r in records:
            if attr is None:
                cmp = 0
            else:
                have = getattr(r, attr)
                cmp = (have > want) - (have < want)
            if result == _Compare.EQUAL:
                ok = cmp == 0
            elif result == _Compare.NOT_EQUAL:
                ok = cmp != 0
            elif result == _Compare.GREATER:
                ok = cmp > 0
            elif result == _Compare.LESS:
                ok = cmp < 0
            else:
                ok = True
            if not ok:
                return False
        return True

    def _path(self, t, path):
        """
        etcd's ``compareToPath``: every compare of ``t`` and of the txns
        nested in the branches taken, evaluated before any op runs, in the
        order the ops will run.
        """
        ok = all(self._compare(c) for c in t.compare)
        path.append(ok)
        for op in (t.success if ok else t.failure):
            if op.WhichOneof("request") == "request_txn":
                self._path(op.request_txn, path)
        return path

    def _check(self, t, path, check):
        """etcd's ``checkRequests``: ``check`` every op of the branches taken."""
        ops = t.success if next(path) else t.failure
        for op in ops:
            kind = op.WhichOneof("request")
            if kind == "request_txn":
                self._check(op.request_txn, path, check)
            else:
                check(kind, op)

    def _checkPut(self, kind, op):
        if kind != "request_put":
            return
        p = op.request_put
        if p.ignore_value or p.ignore_lease:
            if self._get(p.key, self._rev) is None:
                raise ErrKeyNotFound()
        if p.lease and p.lease not in self._leases:
            raise ErrLeaseNotFound()

    def _checkRange(self, kind, op):
        if kind != "request_range":
            return
        revision = op.request_range.revision
        if revision == 0:
            return
        if revision > self._rev:
            raise ErrFutureRev()
        if revision < self._compactRev:
            raise ErrCompacted()

    def _txnInto(self, w, t, path, resp):
        """etcd's ``applyTxn``: run the branch ``next(path)`` chose."""
        ok = next(path)
        resp.succeeded = ok
        for op in (t.success if ok else t.failure):
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                self._rangeInto(op.request_range, w.readRevision, out.response_range)
            elif kind == "request_put":
                self._putInto(w, op.request_put, out.response_put)
            elif kind == "request_delete_range":
                self._deleteRangeInto(w, op.request_delete_range, out.response_delete_range)
            elif kind == "request_txn":
                out.response_txn.header.SetInParent()
                self._txnInto(w, op.request_txn, path, out.response_txn)
        return resp

    def txn(self, request: Any) -> Applied:
        """
        A ``TxnRequest``: L{Applied} with a ``TxnResponse``.  A txn whose
        ops only read (or whose writes change nothing) keeps the revision.
        """
        path = self._path(request, [])
        self._check(request, iter(path), self._checkPut)
        self._check(request, iter(path), self._checkRange)
        w = self._begin()
        resp = rpc_pb2.TxnResponse()
        try:
            self._txnInto(w, request, iter(path), resp)
        except BaseException:
            self._rollback(w)
            raise
        resp.header.revision = w.main if w.changes else w.main - 1
        return Applied(resp, self._commit(w))

    # -- compaction ----------------------------------------------------------

    def compact(self, request: Any) -> Applied:
        """
        A ``CompactionRequest``: drop history before ``revision``, keeping
        each key's record at it (unless that is a tombstone).  L{Applied}
        with a ``CompactionResponse`` and no events.
        """
        rev = request.revision
        if rev <= self._compactRev:
            raise ErrCompacted()
        if rev > self._rev:
            raise ErrFutureRev()
        self._compactRev = rev
        history, keys = self._history, self._keys
        settled = []
        for key in self._compactable:
            h = history.get(key)
            if h is None:
                settled.append(key)
                continue
            i = bisect_right(h, rev, key=_MOD) - 1
            if i >= 0:
                if h[i].createRevision == 0:
                    i += 1
                if i:
                    del h[:i]
            if not h:
                del history[key]
                keys.remove(key)
                settled.append(key)
            elif len(h) == 1 and h[0].createRevision:
                settled.append(key)
        self._compactable.difference_update(settled)
        if rev >= self._logStart:
            del self._log[:rev - self._logStart]
            self._logStart = rev
            if self._log:
                kept = []
                for r in self._log[0]:
                    h = history.get(r.key)
                    if h is not None and h[0] is r:
                        kept.append(r)
                self._log[0] = kept
        resp = rpc_pb2.CompactionResponse()
        resp.header.revision = self._rev
        return Applied(resp, ())

    # -- leases --------------------------------------------------------------

    def leaseGrant(self, request: Any) -> Applied:
        """A ``LeaseGrantRequest``: L{Applied} with a ``LeaseGrantResponse``."""
        leaseID, ttl = request.ID, request.TTL
        if leaseID == 0:
            raise ErrLeaseNotFound()
        if ttl > MAX_LEASE_TTL:
            raise ErrLeaseTTLTooLarge()
        if leaseID in self._leases:
            raise ErrLeaseExist()
        if ttl < self._minLeaseTTL:
            ttl = self._minLeaseTTL
        self._leases[leaseID] = Lease(leaseID, ttl)
        resp = rpc_pb2.LeaseGrantResponse(ID=leaseID, TTL=ttl)
        resp.header.revision = self._rev
        return Applied(resp, ())

    def leaseRevoke(self, request: Any) -> Applied:
        """
        A ``LeaseRevokeRequest``: the lease goes and its keys are deleted,
        in key order, in one revision.  L{Applied} with a
        ``LeaseRevokeResponse`` and the DELETE events.
        """
        lease = self._leases.get(request.ID)
        if lease is None:
            raise ErrLeaseNotFound()
        w = self._begin()
        for key in sorted(lease.keys):
            if self._get(key, w.readRevision) is not None:
                self._delete(w, key)
        del self._leases[lease.id]
        events = self._commit(w)
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = self._rev
        return Applied(resp, events)

    def leaseCheckpoint(self, request: Any) -> Applied:
        """
        A ``LeaseCheckpointRequest``: record each lease's remaining TTL
        (unknown leases are skipped, as etcd does).
        """
        for c in request.checkpoints:
            lease = self._leases.get(c.ID)
            if lease is not None:
                lease.remainingTTL = c.remaining_TTL
        resp = rpc_pb2.LeaseCheckpointResponse()
        resp.header.revision = self._rev
        return Applied(resp, ())

    def lease(self, leaseID: int) -> LeaseInfo | None:
        """The L{LeaseInfo} of ``leaseID``, or None."""
        lease = self._leases.get(leaseID)
        return None if lease is None else lease.info()

    def leases(self) -> list[LeaseInfo]:
        """Every lease's L{LeaseInfo}, by ID."""
        return [self._leases[i].info() for i in sorted(self._leases)]

    # -- etcd's raft payload -------------------------------------------------

    def apply(self, request: Any) -> Applied | None:
        """
        The key-space part of an etcd ``InternalRaftRequest``: L{Applied}
        for a range, put, delete, txn, compaction, lease grant, revoke or
        checkpoint; None for anything else (v2, alarms, auth, members).
        """
        if request.HasField("range"):
            return Applied(self.range(request.range), ())
        if request.HasField("put"):
            return self.put(request.put)
        if request.HasField("delete_range"):
            return self.deleteRange(request.delete_range)
        if request.HasField("txn"):
            return self.txn(request.txn)
        if request.HasField("compaction"):
            return self.compact(request.compaction)
        if request.HasField("lease_grant"):
            return self.leaseGrant(request.lease_grant)
        if request.HasField("lease_revoke"):
            return self.leaseRevoke(request.lease_revoke)
        if request.HasField("lease_checkpoint"):
            return self.leaseCheckpoint(request.lease_checkpoint)
        return None

    # -- watching ------------------------------------------------------------

    def _event(self, r):
        """The event record ``r`` made, ``prevKv`` as etcd's watch server finds it."""
        if r.createRevision:
            if r.version == 1:
                return Event(PUT, r, None)
            kind = PUT
        else:
            kind = DELETE
        prev = None
        if r.modRevision - 1 >= self._compactRev:
            prev = self._before(self._history[r.key], r.modRevision)
        return Event(kind, r, prev)

    def eventsSince(self, key: bytes, rangeEnd_: bytes, startRevision: int,
                    maxEvents: int | None = None) -> tuple[list[Event], int]:
        """
        ``(events, nextRevision)``: the events on ``[key, rangeEnd_)`` (a
        watch's ``key`` and ``range_end``) from ``startRevision`` on, in
        revision order, for a watcher catching up.  With ``maxEvents``, the
        scan stops after the first revision that reaches it (a revision's
        events are never split); ``nextRevision`` is where to go on, the
        current revision + 1 when all was read.  ``ErrCompacted`` when
        ``startRevision`` is below the compact revision: the watch is then
        cancelled with ``compact_revision`` = L{compactRevision}.
        """
        if startRevision < self._compactRev:
            raise ErrCompacted()
        end = rangeEnd(rangeEnd_)
        start = max(startRevision, self._logStart)
        events = []
        if end is None:
            h = self._history.get(key, ())
            i = bisect_left(h, start, key=_MOD)
            n = len(h)
            while i < n:
                r = h[i]
                events.append(self._event(r))
                i += 1
                if maxEvents is not None and len(events) >= maxEvents and (
                        i == n or h[i].modRevision != r.modRevision):
                    return events, r.modRevision + 1
            return events, self._rev + 1
        log, logStart = self._log, self._logStart
        for main in range(start, self._rev + 1):
            for r in log[main - logStart]:
                k = r.key
                if k >= key and (not end or k < end):
                    events.append(self._event(r))
            if maxEvents is not None and len(events) >= maxEvents:
                return events, main + 1
        return events, self._rev + 1

    # -- hashing -------------------------------------------------------------

    def hashKV(self, revision: int = 0) -> Any:
        """
        etcd's ``HashKV``: a ``HashKVResponse`` with the CRC-32C of the
        stored revisions up to ``revision`` (0: now) as etcd's
        ``HashByRev`` computes it over its key bucket.
        """
        compactRev, currentRev = self._compactRev, self._rev
        if 0 < revision <= compactRev:
            raise ErrCompacted()
        if revision > 0 and revision > currentRev:
            raise ErrFutureRev()
        rev = revision if revision != 0 else currentRev
        keep = set()
        for key in self._history:
            r = self._get(key, rev)
            if r is not None:
                keep.add(id(r))
        selected = []
        for h in self._history.values():
            for r in h:
                if r.modRevision > rev:
                    break
                if r.modRevision <= compactRev and keep and id(r) not in keep:
                    continue
                selected.append(r)
        selected.sort(key=lambda r: (r.modRevision, r.sub))
        resp = rpc_pb2.HashKVResponse(
            hash=hashing.hashRecords(selected), compact_revision=compactRev)
        resp.header.revision = currentRev
        return resp

    # -- snapshots -----------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything, as bytes L{restore} takes back (L{raftmux.mvcc.snapshot})."""
        records = [r for h in self._history.values() for r in h]
        records.sort(key=lambda r: (r.modRevision, r.sub))
        return snapshot.encode(
            self._rev, self._compactRev, self._consistentIndex,
            [self._leases[i] for i in sorted(self._leases)], records)

    def restore(self, data: bytes) -> None:
        """
        Replace the whole state with a L{snapshot}.  Raises
        L{raftmux.mvcc.snapshot.SnapshotError} for damaged or foreign data,
        leaving the state as it was.
        """
        state = snapshot.decode(data)
        self._load(state.revision, state.compactRevision, state.consistentIndex,
                   [Lease(i, ttl, remaining) for i, ttl, remaining in state.leases],
                   state.records)
