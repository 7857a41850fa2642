# -*- test-case-name: raftmux.test.test_chaos_checker -*-
"""
The linearizability checker on hand-made register histories (linearizable
and not: stale reads, lost writes, compare-and-set anomalies, overlapping
operations, indeterminate operations that did or did not happen), per-key
partitioning, the step and time bounds, the offending windows it reports,
and properties: a history recorded from a real sequential register with
random overlapping intervals is always linearizable, and one with a read
of a value nobody wrote never is.  Also the history file's round trip.
"""

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.chaos.checker import (
    ANY,
    LINEARIZABLE,
    NOT_LINEARIZABLE,
    UNKNOWN,
    check,
    minimalWindow,
    search,
)
from raftmux.chaos.history import CAS, FAIL, INFO, OK, READ, WRITE, History, NemesisEvent, Op


class _Maker:
    """Builds ops with increasing ids: ``w("k", "a", 0, 1)`` etc."""

    def __init__(self):
        self.next = 0

    def op(self, key, f, value, invoke, complete, type=OK, result=None):
        self.next += 1
        if type == INFO:
            complete = None
        return Op(self.next, key, f, value, type, invoke, complete, result)

    def w(self, key, value, invoke, complete, type=OK):
        return self.op(key, WRITE, value, invoke, complete, type)

    def r(self, key, value, invoke, complete, type=OK):
        return self.op(key, READ, value, invoke, complete, type)

    def cas(self, key, prev, new, invoke, complete, result=True, type=OK):
        return self.op(key, CAS, [prev, new], invoke, complete, type,
                       None if type == INFO else result)


class HandMadeTests(SynchronousTestCase):

    def setUp(self):
        self.m = _Maker()

    def assertVerdict(self, ops, verdict):
        result = check(ops)
        self.assertEqual(result.verdict, verdict, [a.explain() for a in result.anomalies])
        self.assertEqual(result.valid, {LINEARIZABLE: True, NOT_LINEARIZABLE: False}[verdict])
        return result

    def test_empty(self):
        self.assertVerdict([], LINEARIZABLE)

    def test_sequential(self):
        m = self.m
        self.assertVerdict([m.r("k", None, 0, 1), m.w("k", "a", 2, 3), m.r("k", "a", 4, 5),
                            m.cas("k", "a", "b", 6, 7), m.r("k", "b", 8, 9),
                            m.cas("k", "a", "c", 10, 11, result=False), m.r("k", "b", 12, 13)],
                           LINEARIZABLE)

    def test_staleRead(self):
        """A read that began after a write was acknowledged returns the older value."""
        m = self.m
        stale = m.r("k", "a", 4, 5)
        result = self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "b", 2, 3), stale],
                                    NOT_LINEARIZABLE)
        (anomaly,) = result.anomalies
        self.assertIs(anomaly.culprit, stale)
        self.assertEqual(anomaly.state, "b")
        self.assertTrue(anomaly.minimal)
        self.assertEqual([op.describe() for op in anomaly.ops],
                         ["write k 'b'", "read k -> 'a'"])
        self.assertIn("read k -> 'a'", anomaly.explain())
        # The write of the value the stale read saw is shown beside the proof.
        self.assertEqual([op.describe() for op in anomaly.context], ["write k 'a'"])
        self.assertEqual(len(anomaly.asJSON()["context"]), 1)

    def test_staleReadOverlappingIsFine(self):
        """The same read overlapping the second write may be ordered before it."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "b", 2, 4.5), m.r("k", "a", 4, 5)],
                           LINEARIZABLE)

    def test_lostWrite(self):
        """An acknowledged write that a later read does not see."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.r("k", None, 2, 3)], NOT_LINEARIZABLE)

    def test_readOfAFailedWrite(self):
        """A write known to have failed must not be seen."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1, type=FAIL), m.r("k", "a", 2, 3)],
                           NOT_LINEARIZABLE)
        self.assertVerdict([m.w("k", "a", 0, 1, type=FAIL), m.r("k", None, 2, 3)],
                           LINEARIZABLE)

    def test_readOfTheFuture(self):
        """A read that returned a value before anyone began writing it."""
        m = self.m
        self.assertVerdict([m.r("k", "a", 0, 1), m.w("k", "a", 2, 3)], NOT_LINEARIZABLE)

    def test_casSetOnTheWrongValue(self):
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "c", 2, 3),
                            m.cas("k", "a", "b", 4, 5)], NOT_LINEARIZABLE)

    def test_casSetOnAnAbsentKey(self):
        m = self.m
        self.assertVerdict([m.cas("k", "a", "b", 0, 1)], NOT_LINEARIZABLE)
        self.assertVerdict([m.cas("j", "a", "b", 0, 1, result=False)], LINEARIZABLE)

    def test_casFailedOnTheRightValue(self):
        """A compare that failed while the register held exactly its value."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.cas("k", "a", "b", 2, 3, result=False)],
                           NOT_LINEARIZABLE)

    def test_twoConcurrentCasesBothSet(self):
        """Two compare-and-sets from the same value cannot both succeed."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.cas("k", "a", "b", 2, 5),
                            m.cas("k", "a", "c", 2.5, 4.5)], NOT_LINEARIZABLE)
        m = self.m = _Maker()
        self.assertVerdict([m.w("k", "a", 0, 1), m.cas("k", "a", "b", 2, 5),
                            m.cas("k", "b", "c", 2.5, 4.5)], LINEARIZABLE)

    def test_concurrentWritesEitherOrder(self):
        """Two overlapping writes: a later read may see either one."""
        for seen in ("a", "b"):
            m = _Maker()
            self.assertVerdict([m.w("k", "a", 0, 10), m.w("k", "b", 1, 9),
                                m.r("k", seen, 11, 12)], LINEARIZABLE)
        m = _Maker()
        self.assertVerdict([m.w("k", "a", 0, 10), m.w("k", "b", 1, 9),
                            m.r("k", "a", 11, 12), m.r("k", "b", 13, 14)], NOT_LINEARIZABLE)

    def test_readsDisagreeOnOrder(self):
        """Two sequential reads cannot see two concurrent writes in both orders."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 10), m.w("k", "b", 0, 10),
                            m.r("k", "a", 1, 2), m.r("k", "b", 3, 4), m.r("k", "a", 5, 6)],
                           NOT_LINEARIZABLE)

    def test_indeterminateWriteThatHappened(self):
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "b", 2, None, type=INFO),
                            m.r("k", "b", 100, 101)], LINEARIZABLE)

    def test_indeterminateWriteThatDidNotHappen(self):
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "b", 2, None, type=INFO),
                            m.r("k", "a", 100, 101)], LINEARIZABLE)

    def test_indeterminateWriteCannotComeAndGo(self):
        """Seen, then unseen, then seen again: it took effect at most once."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.w("k", "b", 2, None, type=INFO),
                            m.r("k", "b", 3, 4), m.r("k", "a", 5, 6)], NOT_LINEARIZABLE)

    def test_indeterminateWriteSeenBeforeItsInvocation(self):
        m = self.m
        self.assertVerdict([m.r("k", "b", 0, 1), m.w("k", "b", 2, None, type=INFO)],
                           NOT_LINEARIZABLE)

    def test_indeterminateCas(self):
        """An indeterminate compare-and-set sets only from its comparand."""
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.cas("k", "a", "b", 2, None, type=INFO),
                            m.r("k", "b", 3, 4)], LINEARIZABLE)
        m = _Maker()
        self.assertVerdict([m.w("k", "c", 0, 1), m.cas("k", "a", "b", 2, None, type=INFO),
                            m.r("k", "b", 3, 4)], NOT_LINEARIZABLE)
        m = _Maker()
        self.assertVerdict([m.w("k", "c", 0, 1), m.cas("k", "a", "b", 2, None, type=INFO),
                            m.r("k", "c", 3, 4)], LINEARIZABLE)

    def test_unansweredReadsIgnored(self):
        m = self.m
        self.assertVerdict([m.w("k", "a", 0, 1), m.r("k", "zzz", 2, 3, type=FAIL),
                            m.r("k", None, 2, None, type=INFO)], LINEARIZABLE)

    def test_keysAreIndependent(self):
        """
        Each key is its own register: a history that is linearizable per
        key passes even though one register could not explain it, and a
        bad key is reported alone.
        """
        m = self.m
        ops = [m.w("x", "1", 0, 1), m.w("y", "1", 0, 1), m.r("x", "1", 2, 3),
               m.r("y", "1", 2, 3)]
        self.assertEqual(check(ops).keys, {"x": LINEARIZABLE, "y": LINEARIZABLE})
        ops.append(m.r("z", "1", 4, 5))
        result = check(ops)
        self.assertEqual(result.keys, {"x": LINEARIZABLE, "y": LINEARIZABLE,
                                       "z": NOT_LINEARIZABLE})
        self.assertEqual([a.key for a in result.anomalies], ["z"])
        self.assertEqual(result.checked, 5)

    def test_linearizationOrderIsLegal(self):
        m = self.m
        ops = [m.w("k", "a", 0, 10), m.w("k", "b", 1, 9), m.r("k", "a", 11, 12)]
        result = search(ops)
        self.assertEqual(result.verdict, LINEARIZABLE)
        self.assertEqual([ops[i].value for i in result.order], ["b", "a", "a"])


def _hard(count=16):
    """
    Many indeterminate writes, each read later, one after another, and
    then a read nobody could explain: every subset of the writes might
    have been applied early, so the search is exponential.
    """
    m = _Maker()
    ops = [m.w("k", "v%d" % (i,), i * 0.01, None, type=INFO) for i in range(count)]
    ops += [m.r("k", "v%d" % (i,), 1 + i, 1.5 + i) for i in range(count)]
    ops.append(m.r("k", "never", 100, 101))
    return ops


class BoundTests(SynchronousTestCase):

    def test_stepBoundGivesUnknown(self):
        result = check(_hard(), steps=5000)
        self.assertEqual((result.verdict, result.valid), (UNKNOWN, None))
        self.assertEqual(result.anomalies, [])

    def test_timeBoundGivesUnknown(self):
        now = [0.0]

        def clock():
            now[0] += 1.0
            return now[0]
        result = check(_hard(), seconds=5, clock=clock)
        self.assertEqual(result.verdict, UNKNOWN)

    def test_withoutABoundTheAnswerComes(self):
        self.assertEqual(check(_hard(10)).verdict, NOT_LINEARIZABLE)

    def test_aKeyFoundBadStaysBad(self):
        """Running out of budget on a later key does not hide a bad one."""
        m = _Maker()
        ops = [m.w("a", "1", 0, 1), m.r("a", None, 2, 3)] + [
            Op(100 + op.id, "b", op.f, op.value, op.type, op.invoke, op.complete)
            for op in _hard()]
        self.assertEqual(check(ops, steps=5000).verdict, NOT_LINEARIZABLE)


class WindowTests(SynchronousTestCase):

    def test_windowOfALongHistory(self):
        """
        Hundreds of fine operations and one stale read: the window is the
        read and the write it missed, and it is impossible on its own
        (from an unknown start).
        """
        m = _Maker()
        ops = []
        t = 0.0
        for i in range(300):
            ops.append(m.w("k", "v%d" % (i,), t, t + 1))
            ops.append(m.r("k", "v%d" % (i,), t + 2, t + 3))
            t += 4
        stale = m.r("k", "v150", t, t + 1)
        ops.append(stale)
        for i in range(300, 400):
            ops.append(m.w("k", "v%d" % (i,), t + 2, t + 3))
            t += 4
        result = check(ops)
        (anomaly,) = result.anomalies
        self.assertTrue(anomaly.minimal)
        self.assertIs(anomaly.culprit, stale)
        self.assertEqual([op.describe() for op in anomaly.ops],
                         ["read k -> 'v299'", "read k -> 'v150'"])
        self.assertEqual(search(anomaly.ops, ANY).verdict, NOT_LINEARIZABLE)

    def test_windowKeepsTheWriteItNeeds(self):
        """
        The write a stale read missed stays in the window; the earlier read
        that agrees with everything goes.
        """
        m = _Maker()
        ops = [m.w("k", "a", 0, 1), m.r("k", "a", 1.5, 1.8), m.w("k", "b", 2, 3),
               m.r("k", "a", 4, 5)]
        window, proof = minimalWindow(ops)
        self.assertEqual(proof.verdict, NOT_LINEARIZABLE)
        self.assertEqual(window, ops[2:])

    def test_twoReadsAreEnough(self):
        """Reads that see b and then a, with no write between, need no writes shown."""
        m = _Maker()
        ops = [m.w("k", "a", 0, 1), m.r("k", "a", 2, 3), m.w("k", "b", 2, 3),
               m.r("k", "b", 4, 5), m.r("k", "a", 6, 7)]
        window, proof = minimalWindow(ops)
        self.assertEqual(proof.verdict, NOT_LINEARIZABLE)
        self.assertEqual(window, ops[3:])


# -- properties ---------------------------------------------------------------------

def _sequentialHistory(seed, count, keys, indeterminate):
    """
    A history recorded from a real register: each op takes effect at its
    own instant, in order, and its interval is stretched around that
    instant at random (so ops overlap).  Some writes and compare-and-sets
    are recorded as indeterminate, whether they took effect or not.
    """
    rng = random.Random(seed)
    state = {}
    written = {}
    ops = []
    t = 0.0
    for i in range(count):
        t += rng.random()
        key = rng.choice(keys)
        kind = rng.choice((READ, WRITE, CAS))
        before, after = rng.random() * 3, rng.random() * 3
        value = "v%d" % (i,)
        lost = rng.random() < indeterminate
        if kind == READ:
            ops.append(Op(i, key, READ, state.get(key), OK, t - before, t + after))
            continue
        if kind == WRITE:
            happened = not lost or rng.random() < 0.5
            if happened:
                state[key] = value
                written.setdefault(key, []).append(value)
            ops.append(Op(i, key, WRITE, value, INFO if lost else OK, t - before,
                          None if lost else t + after))
            continue
        choices = written.get(key, []) + ["nope"]
        prev = state.get(key) if rng.random() < 0.5 and key in state else rng.choice(choices)
        hit = state.get(key) == prev and prev is not None
        if lost:
            # An indeterminate cas that did happen does what the register says.
            if hit and rng.random() < 0.5:
                state[key] = value
            ops.append(Op(i, key, CAS, [prev, value], INFO, t - before, None))
            continue
        if hit:
            state[key] = value
        ops.append(Op(i, key, CAS, [prev, value], OK, t - before, t + after, result=hit))
    return ops


class PropertyTests(SynchronousTestCase):

    @settings(max_examples=150, deadline=None)
    @given(st.integers(0, 2**32), st.integers(1, 60), st.integers(1, 3),
           st.sampled_from([0.0, 0.1, 0.3]))
    def test_realRegisterHistoriesAreLinearizable(self, seed, count, nkeys, indeterminate):
        ops = _sequentialHistory(seed, count, ["k%d" % (i,) for i in range(nkeys)],
                                 indeterminate)
        result = check(ops, seconds=30)
        self.assertEqual(result.verdict, LINEARIZABLE, [a.explain() for a in result.anomalies])

    @settings(max_examples=150, deadline=None)
    @given(st.integers(0, 2**32), st.integers(1, 60), st.integers(1, 3),
           st.sampled_from([0.0, 0.1, 0.3]), st.data())
    def test_aReadOfANeverWrittenValueIsCaught(self, seed, count, nkeys, indeterminate, data):
        ops = _sequentialHistory(seed, count, ["k%d" % (i,) for i in range(nkeys)],
                                 indeterminate)
        ops.append(Op(count, "k0", READ, None, OK, -5, -4.5))  # a read to corrupt, at least
        reads = [op for op in ops if op.f == READ]
        bad = data.draw(st.sampled_from(reads))
        bad.value = "never-written"
        result = check(ops, seconds=30)
        self.assertEqual(result.verdict, NOT_LINEARIZABLE)
        (anomaly,) = result.anomalies
        self.assertEqual(anomaly.key, bad.key)
        self.assertIn(bad, anomaly.ops)
        # The window is impossible on its own (from the real start at least).
        self.assertEqual(search(anomaly.ops).verdict, NOT_LINEARIZABLE)

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 2**32), st.integers(1, 40))
    def test_orderRespectsRealTimeAndTheModel(self, seed, count):
        """The linearization found replays on a register and keeps real-time order."""
        ops = [op for op in _sequentialHistory(seed, count, ["k"], 0.2)]
        ops.sort(key=lambda o: o.invoke)
        result = search(ops)
        self.assertEqual(result.verdict, LINEARIZABLE)
        order = [ops[i] for i in result.order]
        self.assertEqual(sorted(id(o) for o in order), sorted(id(o) for o in ops))
        state = None
        for position, op in enumerate(order):
            for later in order[position + 1:]:
                if later.complete is not None and op.type != INFO:
                    self.assertFalse(later.complete < op.invoke, (op, later))
            if op.f == READ:
                self.assertEqual(op.value, state)
            elif op.f == WRITE:
                state = op.value
            elif op.type == OK:
                self.assertEqual(op.result, state == op.value[0])
                if op.result:
                    state = op.value[1]
            elif state == op.value[0]:
                state = op.value[1]


class HistoryFileTests(SynchronousTestCase):

    def test_roundTrip(self):
        path = self.mktemp()
        history = History(path, header={"target": "raftmux", "seed": 3})
        m = _Maker()
        history.add(m.w("k", "a", 0.5, 1.0))
        history.add(m.cas("k", "a", "b", 1.5, None, type=INFO))
        history.addEvent(NemesisEvent("partition", "start", 2.0, {"cut": [["n1"], ["n2"]]}))
        history.add(m.r("k", "b", 2.5, 3.0))
        history.addEvent(NemesisEvent("partition", "stop", 4.0))
        history.close()
        with open(path, "a") as f:
            f.write('{"record": "op", "id"')  # a line cut short by a crash
        loaded = History.load(path)
        self.assertEqual(loaded.header, {"target": "raftmux", "seed": 3})
        self.assertEqual([op.asJSON() for op in loaded.ops],
                         [op.asJSON() for op in history.ops])
        self.assertEqual(loaded.windows(),
                         [("partition", 2.0, 4.0, {"cut": [["n1"], ["n2"]]})])
        with open(path) as f:
            self.assertEqual(json.loads(f.readline())["record"], "run")

    def test_badOperation(self):
        self.assertRaises(ValueError, Op, 1, "k", "increment", 1)
        self.assertRaises(ValueError, Op, 1, "k", READ, 1, type="maybe")
