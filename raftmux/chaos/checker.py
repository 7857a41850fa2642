# -*- test-case-name: raftmux.test.test_chaos_checker -*-
"""
A linearizability checker for a map of registers (read, write,
compare-and-set on each key), sans-IO: operations in, a verdict out.

The search is Wing & Gong's, as Lowe and then Porcupine refined it: call
and return events sit in one doubly-linked list in time order; the search
takes the first call it can apply to the model, "lifts" the operation (its
call and return) out of the list and starts again from the head; reaching
a return whose operation is not yet linearized means the choices so far
were wrong, and it backtracks.  Every (set of linearized operations, state)
it has been in is remembered, so no configuration is explored twice: that
cache is what makes the search practical.

Keys are independent registers, so the history is checked per key
(P-compositionality: a history of independent objects is linearizable iff
each object's is).

Indeterminate operations (``info``: a write or compare-and-set whose
answer never came) may take effect at any time after their invocation or
never; they get an end time of infinity and the model accepts them in any
state.  "Never" needs no case of its own: such an operation can always be
linearized last, where nothing observes it.  Operations known to have
failed are dropped; reads that got no answer too (they change nothing).

The search is bounded by steps and by a deadline; running out gives
"unknown", never an endless run.

When a key's history is not linearizable, ``minimalWindow`` narrows it
to a small set of operations that is still not linearizable on its own
(see its docstring for why each cut is sound), so the report shows the
few operations that contradict each other rather than thousands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from raftmux.chaos.history import CAS, FAIL, INFO, OK, READ, WRITE, Op

__all__ = ["ANY", "FRESH", "LINEARIZABLE", "NOT_LINEARIZABLE", "UNKNOWN", "Anomaly", "CheckResult",
           "SearchResult", "check", "checkKey", "minimalWindow", "search", "step"]

LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN = "linearizable", "not linearizable", "unknown"
INF = float("inf")


class _Any:
    """The register's value is not known: any value, including absent."""

    def __repr__(self):
        return "ANY"


ANY = _Any()
_REJECT = object()


def step(state, op):
    """
    The register model: the state after ``op`` is applied in ``state``,
    or ``_REJECT`` when ``op``'s answer is impossible there.  ``ANY``
    over-approximates: from it every answer is possible.
    """
    f = op.f
    if f == READ:
        if state is ANY or state == op.value:
            return op.value
        return _REJECT
    if f == WRITE:
        return op.value
    prev, new = op.value
    if op.type == INFO:
        if state is ANY:
            return ANY
        return new if state == prev else state
    if op.result:
        if state is ANY or state == prev:
            return new
        return _REJECT
    if state is ANY:
        return ANY
    return state if state != prev else _REJECT


class SearchResult:
    """
    ``verdict``; ``order`` (the linearization, as indexes into the ops,
    when linearizable); ``culprit`` (index of the operation the deepest
    attempt could not place) and ``state`` (the register's value there);
    ``depth`` (how many operations that attempt placed); ``steps``.
    """

    def __init__(self, verdict, steps, order=None, culprit=None, state=None, depth=0):
        self.verdict = verdict
        self.steps = steps
        self.order = order
        self.culprit = culprit
        self.state = state
        self.depth = depth


class _Budget:
    """Steps and a deadline shared by several searches."""

    def __init__(self, steps=None, seconds=None, clock=time.monotonic):
        self.steps = steps
        self.clock = clock
        self.deadline = None if seconds is None else clock() + seconds

    def exhausted(self, used):
        if self.steps is not None and used >= self.steps:
            return True
        return self.deadline is not None and self.clock() > self.deadline

    def spend(self, used):
        if self.steps is not None:
            self.steps = max(0, self.steps - used)


class _Fresh:
    """A value nobody ever read or compared with: all such values act alike."""

    def __repr__(self):
        return "FRESH"


FRESH = _Fresh()


class _Canonical:
    """An operation as the search sees it: values nobody observes become ``FRESH``."""

    __slots__ = ("f", "value", "type", "result")

    def __init__(self, op, observed):
        self.f, self.type, self.result = op.f, op.type, op.result
        if op.f == WRITE:
            self.value = op.value if op.value in observed else FRESH
        elif op.f == CAS:
            prev, new = op.value
            self.value = (prev, new if new in observed else FRESH)
        else:
            self.value = op.value


def _observed(ops):
    """Every value some operation compares the register with."""
    seen = set()
    for op in ops:
        if op.f == READ:
            seen.add(op.value)
        elif op.f == CAS:
            seen.add(op.value[0])
    return seen


def _pool(op, canonical):
    """
    Indeterminate operations that nobody can tell apart once applied: a
    write of an unobserved value, or a compare-and-set from the same value
    to an unobserved one.  They never end, so any two of them that have
    begun can trade places in a linearization; the search only ever tries
    the earliest of a kind, which keeps many abandoned writes from making
    it exponential.
    """
    if op.type != INFO:
        return None
    if canonical.f == WRITE and canonical.value is FRESH:
        return (WRITE,)
    if canonical.f == CAS and canonical.value[1] is FRESH:
        return (CAS, canonical.value[0])
    return None


def _shown(raw, state, op):
    """
    The register's real value after ``op`` (``state`` is the canonical one
    before it), kept beside the canonical state only to explain failures.
    """
    if op.f == WRITE:
        return op.value
    if op.f == READ:
        return op.value if state is ANY else raw
    prev, new = op.value
    if state is ANY:
        return new if op.result else ANY
    if op.type == INFO:
        return new if state == prev else raw
    return new if op.result else raw


def search(ops, init=None, budget=None):
    """
    Is the single-register history ``ops`` linearizable from ``init``?
    ``ops``: ``Op``s of one key, none of type ``fail``.  Returns a
    ``SearchResult``.
    """
    budget = budget or _Budget()
    n = len(ops)
    observed = _observed(ops)
    model = [_Canonical(op, observed) for op in ops]
    pool = [_pool(op, m) for op, m in zip(ops, model, strict=True)]
    # Failed compares not yet linearized, by the value they compared with.
    failedCompares: dict[Any, Any] = {}
    comparesWith = [None] * n
    for i, op in enumerate(ops):
        if op.f == CAS and op.type == OK and op.result is False:
            comparesWith[i] = op.value[0]
            failedCompares[op.value[0]] = failedCompares.get(op.value[0], 0) + 1
    events = []
    for i, op in enumerate(ops):
        end = INF if op.type == INFO or op.complete is None else op.complete
        events.append((op.invoke, 0, i))
        events.append((end, 1, i))
    events.sort()
    size = len(events)
    head = size
    # Event k links to k + 1; the head (index ``size``) to the first; -1 ends.
    nxt = [k + 1 for k in range(size)] + [0 if size else -1]
    if size:
        nxt[size - 1] = -1
    prv = [head] + list(range(size - 1)) + [-1]
    isCall = [e[1] == 0 for e in events]
    openEnded = [e[1] == 1 and e[0] == INF for e in events]
    opOf = [e[2] for e in events]
    returnOf = [0] * n
    for node, (_, kind, i) in enumerate(events):
        if kind == 1:
            returnOf[i] = node
    bit = [1 << i for i in range(n)]

    def unlink(x):
        p, q = prv[x], nxt[x]
        nxt[p] = q
        if q != -1:
            prv[q] = p

    def relink(x):
        p, q = prv[x], nxt[x]
        nxt[p] = x
        if q != -1:
            prv[q] = x

    state = raw = init
    linearized = 0
    cache = set()
    calls = []
    tried: frozenset[Any] = frozenset()  # pool kinds already met in this scan of the list
    steps = 0
    best: tuple[int, Any, Any] = (-1, None, None)
    entry = nxt[head]
    while entry != -1:
        steps += 1
        if not steps & 0xFFF and budget.exhausted(steps):
            budget.spend(steps)
            return SearchResult(UNKNOWN, steps, culprit=best[1], state=best[2],
                                depth=max(best[0], 0))
        i = opOf[entry]
        if isCall[entry]:
            kind = pool[i]
            if kind is not None:
                if kind in tried or state is ANY or state is FRESH or \
                        not failedCompares.get(state) or \
                        (kind[0] == CAS and kind[1] != state):
                    entry = nxt[entry]
                    continue
                tried = tried | {kind}
            new = step(state, model[i])
            if new is not _REJECT:
                lin = linearized | bit[i]
                seen = (lin, new)
                if seen not in cache:
                    cache.add(seen)
                    calls.append((entry, state, tried, raw))
                    raw = _shown(raw, state, ops[i])
                    state = new
                    linearized = lin
                    unlink(entry)
                    unlink(returnOf[i])
                    if comparesWith[i] is not None:
                        failedCompares[comparesWith[i]] -= 1
                    entry = nxt[head]
                    tried = frozenset()
                    continue
            entry = nxt[entry]
        elif openEnded[entry]:
            # Every determinate operation is placed (their returns all come
            # earlier in the list); what is left may never have happened.
            break
        else:
            if len(calls) > best[0]:
                best = (len(calls), i, raw)
            if not calls:
                budget.spend(steps)
                return SearchResult(NOT_LINEARIZABLE, steps, culprit=best[1], state=best[2],
                                    depth=best[0])
            entry, state, tried, raw = calls.pop()
            i = opOf[entry]
            if comparesWith[i] is not None:
                failedCompares[comparesWith[i]] += 1
            linearized &= ~bit[i]
            relink(returnOf[i])
            relink(entry)
            entry = nxt[entry]
    budget.spend(steps)
    order = [opOf[c] for c, _, _, _ in calls]
    placed = set(order)
    order.extend(i for i in range(n) if i not in placed)
    return SearchResult(LINEARIZABLE, steps, order=order, depth=n)


def _checkable(ops):
    """The operations the model must explain: not failed, not unanswered reads."""
    return [op for op in ops if op.type != FAIL and not (op.f == READ and op.type != OK)]


def _cuts(ops):
    """
    Times at which no determinate operation is in flight (indeterminate
    ones never end, so they are not counted): everything answered before
    such a time precedes everything invoked after it in every
    linearization.
    """
    definite = sorted((op.invoke, op.complete) for op in ops
                      if op.type == OK and op.complete is not None)
    cuts = []
    latest = None
    for invoke, complete in definite:
        if latest is not None and latest < invoke:
            cuts.append((latest + invoke) / 2.0)
        latest = complete if latest is None else max(latest, complete)
    return cuts


def _between(ops, start, end):
    """
    The operations of the window (``start``, ``end``): those invoked
    before ``end`` that did not end before ``start`` (indeterminate ones
    never end).
    """
    return [op for op in ops if op.invoke < end and
            (op.type == INFO or op.complete is None or op.complete > start)]


def minimalWindow(ops, init=None, budget=None):
    """
    A small sub-history of the non-linearizable single-register history
    ``ops`` that is still not linearizable, as ``(ops, SearchResult)``; or
    ``(ops, None)`` when no smaller one was proven in the budget.

    Each reduction keeps "not linearizable" meaning the same thing for the
    whole history:

    - cutting at a time when no determinate operation is in flight, with
      the register's value then unknown (``ANY``): what came before can
      only have left some value there, and ``ANY`` allows every one;
    - cutting off everything invoked after such a time: in any
      linearization it comes after every determinate operation kept;
    - removing an operation that only observes (a read, a compare-and-set
      that failed): a linearization of the whole is one of the rest.

    Indeterminate operations and writes are never removed (one of them may
    be what explains the rest).
    """
    budget = budget or _Budget(seconds=10.0)
    bounds = [-INF] + _cuts(ops) + [INF]
    best = [ops, None]

    def impossible(window, fromStart):
        result = search(window, init if fromStart else ANY, budget)
        if result.verdict == NOT_LINEARIZABLE:
            best[:] = [window, result]
            return True
        return False

    # The earliest end cut by which the history is already impossible.
    lo, hi = 1, len(bounds) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if impossible(_between(ops, -INF, bounds[mid]), True):
            hi = mid
        else:
            lo = mid + 1
    end = hi
    # The latest start cut that keeps it impossible with the start unknown.
    lo, hi = 0, end - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if impossible(_between(ops, bounds[mid], bounds[end]), False):
            lo = mid
        else:
            hi = mid - 1
    fromStart = lo == 0
    window = _between(ops, bounds[lo], bounds[end])
    if best[1] is None or len(best[0]) != len(window):
        if not impossible(window, fromStart):
            return best[0], best[1]
    # Drop observers, the latest first, while it stays impossible.
    for op in sorted([op for op in window if _observer(op)], key=lambda o: -o.invoke):
        if budget.exhausted(0):
            break
        smaller = [o for o in window if o is not op]
        if impossible(smaller, fromStart):
            window = smaller
    return best[0], best[1]


def _observer(op):
    return op.type == OK and (op.f == READ or (op.f == CAS and op.result is False))


class Anomaly:
    """
    A key whose history is not linearizable: ``ops`` (the window that is
    impossible on its own, in invocation order), ``culprit`` (the
    operation the search could not place), ``state`` (the value the
    register held when it had to take effect), ``minimal`` (whether the
    window was proven on its own, else ``ops`` is the key's whole
    history); ``context`` (the writes, from outside the window, of the
    values its operations saw: not part of the proof, only to read it).
    """

    def __init__(self, key, ops, culprit, state, minimal, context=()):
        self.key = key
        self.ops = sorted(ops, key=lambda o: o.invoke)
        self.culprit = culprit
        self.state = state
        self.minimal = minimal
        self.context = sorted(context, key=lambda o: o.invoke)

    def explain(self):
        if self.state is ANY:
            shown = "unknown"
        else:
            shown = "nil" if self.state is None else repr(self.state)
        if self.culprit is None:
            return "key %s: no order of these operations is a legal register history" % (
                self.key,)
        return ("key %s: %s (#%s) cannot take effect: every order of the operations "
                "before it leaves the register at %s" % (
                    self.key, self.culprit.describe(), self.culprit.id, shown))

    def asJSON(self):
        return {"key": self.key, "explanation": self.explain(), "minimal": self.minimal,
                "culprit": self.culprit.asJSON() if self.culprit is not None else None,
                "ops": [op.asJSON() for op in self.ops],
                "context": [op.asJSON() for op in self.context]}


class CheckResult:
    """
    ``verdict`` (``LINEARIZABLE``, ``NOT_LINEARIZABLE``, ``UNKNOWN``);
    ``valid`` (True, False, or None when unknown); ``keys`` (key ->
    verdict); ``anomalies``; ``checked`` (operations the model had to
    explain); ``steps``; ``seconds``.
    """

    def __init__(self, verdict, keys, anomalies, checked, steps, seconds):
        self.verdict = verdict
        self.valid = {LINEARIZABLE: True, NOT_LINEARIZABLE: False}.get(verdict)
        self.keys = keys
        self.anomalies = anomalies
        self.checked = checked
        self.steps = steps
        self.seconds = seconds

    def asJSON(self):
        return {"verdict": self.verdict, "valid": self.valid, "keys": self.keys,
                "checked": self.checked, "steps": self.steps,
                "seconds": round(self.seconds, 3),
                "anomalies": [a.asJSON() for a in self.anomalies]}


def checkKey(ops, init=None, budget=None, windowSeconds=10.0):
    """One key's ``ops`` (``Op``s): ``(SearchResult, Anomaly or None)``."""
    ops = sorted(_checkable(ops), key=lambda o: o.invoke)
    result = search(ops, init, budget)
    if result.verdict != NOT_LINEARIZABLE:
        return result, None
    key = ops[0].key if ops else None
    window, proof = minimalWindow(ops, init, _Budget(seconds=windowSeconds))
    if proof is None:
        culprit = ops[result.culprit] if result.culprit is not None else None
        return result, Anomaly(key, ops, culprit, result.state, False)
    culprit = window[proof.culprit] if proof.culprit is not None else None
    return result, Anomaly(key, window, culprit, proof.state, True, _context(ops, window))


def _context(ops, window):
    """The writes outside ``window`` of the values its operations compared with."""
    inWindow = {id(op) for op in window}
    seen = _observed(window)
    found = []
    for op in ops:
        if id(op) in inWindow:
            continue
        made = op.value if op.f == WRITE else op.value[1] if op.f == CAS else None
        if op.f != READ and made in seen and (op.f == WRITE or op.result or op.type == INFO):
            found.append(op)
    return found


def check(ops: Iterable[Op], seconds: float = 60.0, steps: int | None = None,
          clock: Callable[[], float] = time.monotonic) -> CheckResult:
    """
    Check a whole history (``Op``s on any keys, every key starting
    absent).  ``seconds`` and ``steps`` bound the search over all keys;
    past either the verdict is ``UNKNOWN`` (unless a key was already
    found not linearizable).
    """
    began = clock()
    budget = _Budget(steps, seconds, clock)
    byKey: dict[Any, Any] = {}
    for op in ops:
        byKey.setdefault(op.key, []).append(op)
    keys, anomalies = {}, []
    total = checked = 0
    for key in sorted(byKey, key=str):
        if budget.exhausted(0):
            keys[key] = UNKNOWN
            continue
        result, anomaly = checkKey(byKey[key], None, budget)
        keys[key] = result.verdict
        total += result.steps
        checked += len(_checkable(byKey[key]))
        if anomaly is not None:
            anomalies.append(anomaly)
    verdicts = set(keys.values())
    if NOT_LINEARIZABLE in verdicts:
        verdict = NOT_LINEARIZABLE
    elif UNKNOWN in verdicts:
        verdict = UNKNOWN
    else:
        verdict = LINEARIZABLE
    return CheckResult(verdict, keys, anomalies, checked, total, clock() - began)
