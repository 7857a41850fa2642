# -*- test-case-name: raftmux.test.test_mvcc_model -*-
"""
L{raftmux.mvcc.KeySpace} against a reference model that only keeps, per
key, the list of ``(revision, value or None)`` it was given: random puts,
deletes, txns and compactions must agree with the model on every range at
every revision not compacted, on every watch event, and survive snapshot
and restore at any point.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import DELETE, PUT, KeySpace, errors, validate

KEYS = [b"a", b"b", b"ba", b"c", b"d"]


class Model:
    """Per key, every (revision, sub, value) written; None is a delete."""

    def __init__(self):
        self.revision = 1
        self.compacted = -1
        self.history = {}
        self.events = []  # (revision, sub, type, key, value)

    def live(self, key, rev):
        state = None
        for r, _, v in self.history.get(key, ()):
            if r > rev:
                break
            state = v
        return state

    def kv(self, key, rev):
        """(value, create, mod, version) of ``key`` at ``rev``, or None."""
        out = None
        for r, _, v in self.history.get(key, ()):
            if r > rev:
                break
            if v is None:
                out = None
            elif out is None:
                out = (v, r, r, 1)
            else:
                out = (v, out[1], r, out[3] + 1)
        return out

    def keysIn(self, key, end, extra=()):
        if end is None:
            return [key]
        return sorted(k for k in set(self.history) | set(extra)
                      if k >= key and (not end or k < end))

    def state(self, rev):
        return {k: self.kv(k, rev) for k in self.history if self.kv(k, rev) is not None}

    def write(self, changes):
        """Apply ``[(key, value or None)]`` as one revision (if any)."""
        if not changes:
            return
        self.revision += 1
        for sub, (k, v) in enumerate(changes):
            self.history.setdefault(k, []).append((self.revision, sub, v))
            self.events.append((self.revision, sub, PUT if v is not None else DELETE, k, v))


def end(e):
    return None if e == b"" else (b"" if e == b"\x00" else e)


keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
ends = st.sampled_from([b"", b"\x00", b"b", b"bb", b"d", b"z"])

puts = st.builds(lambda k, v: ("put", k, v), keys, values)
deletes = st.builds(lambda k, e: ("delete", k, e), keys, ends)
ops = st.one_of(
    puts, puts, deletes,
    st.builds(lambda k, v, yes, no: ("txn", k, v, yes, no),
              keys, st.integers(0, 3),
              st.lists(st.one_of(puts, deletes), max_size=3),
              st.lists(st.one_of(puts, deletes), max_size=3)),
    st.builds(lambda back: ("compact", back), st.integers(-1, 4)),
    st.just(("snapshot",)),
)


def requestOp(op):
    if op[0] == "put":
        return pb.RequestOp(request_put=pb.PutRequest(key=op[1], value=op[2]))
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=op[1], range_end=op[2]))


class ModelTests(SynchronousTestCase):

    def modelApply(self, model, ops):
        """The model's changes for a branch of puts/deletes (one revision)."""
        changes = []
        current = {}

        def liveNow(k):
            if k in current:
                return current[k]
            return model.live(k, model.revision)

        for op in ops:
            if op[0] == "put":
                changes.append((op[1], op[2]))
                current[op[1]] = op[2]
            else:
                for k in model.keysIn(op[1], end(op[2]), current):
                    if liveNow(k) is not None:
                        changes.append((k, None))
                        current[k] = None
        return changes

    def check(self, ks, model):
        self.assertEqual(ks.revision, model.revision)
        self.assertEqual(ks.compactRevision, model.compacted)
        for rev in range(max(model.compacted, 1), model.revision + 1):
            resp = ks.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev))
            got = {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
                   for kv in resp.kvs}
            self.assertEqual(got, model.state(rev), "at revision %d" % (rev,))
            self.assertEqual(resp.count, len(got))
            self.assertEqual([kv.key for kv in resp.kvs], sorted(got))
            for key in KEYS:
                for e in (b"", b"\x00", b"c"):
                    r = ks.range(pb.RangeRequest(key=key, range_end=e, revision=rev, limit=1))
                    want = sorted(k for k in model.keysIn(key, end(e))
                                  if model.kv(k, rev) is not None)
                    self.assertEqual(r.count, len(want))
                    self.assertEqual([kv.key for kv in r.kvs], want[:1])
                    self.assertEqual(r.more, len(want) > 1)
        if model.compacted > 1:
            self.assertRaises(errors.ErrCompacted, ks.range,
                              pb.RangeRequest(key=b"a", revision=model.compacted - 1))
        self.assertRaises(errors.ErrFutureRev, ks.range,
                          pb.RangeRequest(key=b"a", revision=model.revision + 1))
        self.checkHistoryEvents(ks, model)

    def checkHistoryEvents(self, ks, model):
        start = max(model.compacted, 1)
        events, nextRev = ks.eventsSince(b"\x00", b"\x00", start)
        self.assertEqual(nextRev, model.revision + 1)
        expected = [e for e in model.events if e[0] > model.compacted]
        # at the compact revision itself only each key's last live change is kept
        atCompact = [e for e in model.events if e[0] == model.compacted]
        kept = [e for i, e in enumerate(atCompact) if e[2] == PUT and not any(
            later[3] == e[3] for later in atCompact[i + 1:])]
        got = [(e.revision, e.kv.sub, e.type, e.key, e.kv.value if e.type == PUT else None)
               for e in events]
        self.assertEqual(got, kept + expected)
        for e in events:
            self.assertPrev(e, model)
        # one key's history gives the same events as the log
        for key in KEYS:
            single, _ = ks.eventsSince(key, b"", start)
            self.assertEqual(single, [e for e in events if e.key == key])

    def assertPrev(self, event, model):
        """
        etcd's watch server reads prev_kv at the revision before the event
        and has none for a create or when that revision is compacted.
        """
        if (event.type == PUT and event.kv.version == 1) or (
                event.revision - 1 < model.compacted):
            self.assertIsNone(event.prevKv)
            return
        want = model.kv(event.key, event.revision - 1)
        if want is None:
            self.assertIsNone(event.prevKv)
        else:
            p = event.prevKv
            self.assertEqual((p.value, p.createRevision, p.modRevision, p.version), want)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(5, 40).flatmap(lambda n: st.lists(ops, min_size=n, max_size=n)))
    def test_agreesWithModel(self, script):
        """
        Every range at every revision not compacted, the count, the limit
        and ``more``, the compaction errors and the watch events agree with
        the model; snapshot/restore in the middle changes nothing.
        """
        ks, model = KeySpace(), Model()
        for op in script:
            kind = op[0]
            if kind == "put":
                applied = ks.put(pb.PutRequest(key=op[1], value=op[2]))
                model.write([(op[1], op[2])])
                self.assertEqual(applied.response.header.revision, model.revision)
                self.assertEqual([e.key for e in applied.events], [op[1]])
            elif kind == "delete":
                changes = self.modelApply(model, [op])
                applied = ks.deleteRange(
                    pb.DeleteRangeRequest(key=op[1], range_end=op[2]))
                self.assertEqual(applied.response.deleted, len(changes))
                model.write(changes)
                self.assertEqual(applied.response.header.revision, model.revision)
            elif kind == "txn":
                _, key, version, yes, no = op
                request = pb.TxnRequest(
                    compare=[pb.Compare(key=key, target=pb.Compare.VERSION,
                                        result=pb.Compare.EQUAL, version=version)],
                    success=[requestOp(o) for o in yes],
                    failure=[requestOp(o) for o in no])
                try:
                    validate.checkTxn(request)
                except errors.ErrDuplicateKey:
                    continue
                kv = model.kv(key, model.revision)
                ok = (kv[3] if kv else 0) == version
                changes = self.modelApply(model, yes if ok else no)
                applied = ks.txn(request)
                self.assertEqual(applied.response.succeeded, ok)
                model.write(changes)
                self.assertEqual(applied.response.header.revision, model.revision)
                self.assertEqual([(e.key, e.type) for e in applied.events],
                                 [(k, PUT if v is not None else DELETE) for k, v in changes])
            elif kind == "compact":
                rev = model.revision - op[1]
                if rev <= model.compacted:
                    self.assertRaises(errors.ErrCompacted, ks.compact,
                                      pb.CompactionRequest(revision=rev))
                elif rev > model.revision:
                    self.assertRaises(errors.ErrFutureRev, ks.compact,
                                      pb.CompactionRequest(revision=rev))
                else:
                    ks.compact(pb.CompactionRequest(revision=rev))
                    model.compacted = rev
            else:
                data = ks.snapshot()
                other = KeySpace()
                other.restore(data)
                self.assertEqual(other.snapshot(), data)
                self.assertEqual(other.hashKV(), ks.hashKV())
                ks = other
        self.check(ks, model)
        restored = KeySpace()
        restored.restore(ks.snapshot())
        self.check(restored, model)
