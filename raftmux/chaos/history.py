# -*- test-case-name: raftmux.test.test_chaos_checker -*-
"""
What a chaos run saw: client operations and nemesis events, in memory and
as a JSON-lines file (one record per line, so a run cut short still leaves
a readable file).

An operation is Jepsen's: a client invoked ``f`` on ``key`` at ``invoke``
seconds (from the run's start) and heard back at ``complete``.  Its
``type`` is ``"ok"`` (answered: a read's ``value``, a write done, a
compare-and-set's ``result``), ``"fail"`` (certainly took no effect: a
refused write, a read that got no answer) or ``"info"`` (indeterminate: a
write or compare-and-set whose answer never came may or may not have taken
effect, at any time after its invocation; its ``complete``, when set, is
only when the client stopped waiting, and the checker treats it as open).
"""

import json
from typing import Any

__all__ = ["Op", "NemesisEvent", "History", "READ", "WRITE", "CAS", "OK", "FAIL", "INFO"]

READ, WRITE, CAS = "read", "write", "cas"
OK, FAIL, INFO = "ok", "fail", "info"


class Op:
    """
    One operation.  ``value``: for a read the value read (None: the key was
    absent); for a write the value written; for a compare-and-set the pair
    ``[prev, new]``.  ``result``: for an answered compare-and-set, True if
    it set the key, False if the key held something other than ``prev``.
    """

    __slots__ = ("id", "process", "node", "key", "f", "value", "type", "result",
                 "invoke", "complete", "error")

    def __init__(self, id, key, f, value, type=OK, invoke=0.0, complete=None, result=None,
                 process=0, node=None, error=None):
        if f not in (READ, WRITE, CAS):
            raise ValueError("unknown operation %r" % (f,))
        if type not in (OK, FAIL, INFO):
            raise ValueError("unknown type %r" % (type,))
        self.id = id
        self.process = process
        self.node = node
        self.key = key
        self.f = f
        self.value = value
        self.type = type
        self.result = result
        self.invoke = invoke
        self.complete = complete
        self.error = error

    def asJSON(self):
        return {"record": "op", "id": self.id, "process": self.process, "node": self.node,
                "key": self.key, "f": self.f, "value": self.value, "type": self.type,
                "result": self.result, "invoke": self.invoke, "complete": self.complete,
                "error": self.error}

    @classmethod
    def fromJSON(cls, d):
        value = d.get("value")
        if d["f"] == CAS and value is not None:
            value = list(value)
        return cls(d["id"], d["key"], d["f"], value, d.get("type", OK), d.get("invoke", 0.0),
                   d.get("complete"), d.get("result"), d.get("process", 0), d.get("node"),
                   d.get("error"))

    def describe(self):
        """``read k -> '3'``, ``write k '3'``, ``cas k '3'->'4' (set)``: for people."""
        if self.f == READ:
            what = "read %s -> %s" % (self.key, _show(self.value) if self.type == OK else "?")
        elif self.f == WRITE:
            what = "write %s %s" % (self.key, _show(self.value))
        else:
            prev, new = self.value
            outcome = {True: "set", False: "compare failed", None: "?"}[self.result]
            what = "cas %s %s->%s (%s)" % (self.key, _show(prev), _show(new),
                                           outcome if self.type == OK else "?")
        return what

    def __repr__(self):
        end = "%.3f" % (self.complete,) if self.complete is not None else "..."
        return "<Op #%s p%s %s %s [%.3f, %s]%s>" % (
            self.id, self.process, self.describe(), self.type, self.invoke, end,
            " on %s" % (self.node,) if self.node else "")


def _show(value):
    return "nil" if value is None else repr(value)


class NemesisEvent:
    """A fault that began (``f="start"``) or was healed (``f="stop"``) at ``time``."""

    __slots__ = ("kind", "f", "time", "detail")

    def __init__(self, kind, f, time, detail=None):
        self.kind = kind
        self.f = f
        self.time = time
        self.detail = detail

    def asJSON(self):
        return {"record": "nemesis", "kind": self.kind, "f": self.f, "time": self.time,
                "detail": self.detail}

    @classmethod
    def fromJSON(cls, d):
        return cls(d["kind"], d["f"], d["time"], d.get("detail"))

    def __repr__(self):
        return "<Nemesis %s %s %.3f %r>" % (self.kind, self.f, self.time, self.detail)


class History:
    """
    The run's operations and nemesis events.  With ``path`` every record is
    appended to that file as it completes.
    """

    def __init__(self, path=None, header=None):
        self.ops = []
        self.events = []
        self.header = dict(header or {})
        self.path = path
        self._file = None
        if path is not None:
            self._file = open(path, "w", encoding="utf-8")
            self._write(dict(self.header, record="run"))

    def _write(self, record):
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()

    def add(self, op):
        self.ops.append(op)
        self._write(op.asJSON())

    def addEvent(self, event):
        self.events.append(event)
        self._write(event.asJSON())

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def windows(self):
        """``[(kind, start, stop or None, detail)]``: each fault's time span."""
        open_: dict[Any, Any] = {}
        spans: list[Any] = []
        for e in self.events:
            if e.f == "start":
                open_.setdefault(e.kind, []).append(len(spans))
                spans.append([e.kind, e.time, None, e.detail])
            elif open_.get(e.kind):
                spans[open_[e.kind].pop(0)][2] = e.time
        return [tuple(s) for s in spans]

    @classmethod
    def load(cls, path):
        """A ``History`` (without a file) from a JSON-lines file."""
        history = cls()
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                kind = record.get("record")
                if kind == "op":
                    history.ops.append(Op.fromJSON(record))
                elif kind == "nemesis":
                    history.events.append(NemesisEvent.fromJSON(record))
                elif kind == "run":
                    record.pop("record")
                    history.header = record
        return history
