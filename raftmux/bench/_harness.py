# -*- test-case-name: raftmux.test.test_bench_harness -*-
"""
Shared pieces of the benchmarks: the result record, the table and JSON
printers, and a helper that runs one side of a benchmark in a child process.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """One measured figure and its baseline from the same run."""

    name: str
    unit: str
    value: float
    baseline: float | None = None
    target: float | None = None
    higherIsBetter: bool = True
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self):
        if not self.baseline or self.value is None:
            return None
        if self.higherIsBetter:
            return self.value / self.baseline
        return self.baseline / self.value

    def asJSON(self):
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def median(values):
    return statistics.median(values)


def interleavedResult(name, unit, values, baselines, notes, target=None):
    """
    A Result from rounds that ran the measured side and its baseline one after
    the other: medians of each, and the per-round ratios in the notes, so
    load that comes and goes during a run shows as spread, not as a bias.
    """
    ratios = [v / b for v, b in zip(values, baselines, strict=True)]
    return Result(name, unit, median(values), median(baselines), target=target,
                  notes="%s; per-round ratios %s" % (notes, " ".join("%.2f" % r for r in ratios)),
                  extra={"roundRatios": ratios, "rounds": len(ratios)})


def formatTable(part, results):
    rows = [("benchmark", "value", "baseline", "ratio", "target", "notes")]
    for r in results:
        ratio = r.ratio
        rows.append((
            r.name,
            "%s %s" % (_num(r.value), r.unit),
            "-" if r.baseline is None else "%s %s" % (_num(r.baseline), r.unit),
            "-" if ratio is None else "%.2fx" % (ratio,),
            "-" if r.target is None else ">= %gx" % (r.target,),
            r.notes,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "raftmux.bench %s\n%s" % (part, "\n".join(lines))


def formatJSON(part, results):
    return json.dumps({"part": part, "results": [r.asJSON() for r in results]})


def _num(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "%.3g" % (v,)


@contextmanager
def serverProcess(module, *args, env=None):
    """
    Run ``python -m module args...`` as a child; yield (process, first line
    of its stdout), which by convention is the port it listens on.  The child
    is terminated when the block ends.
    """
    childEnv = dict(os.environ)
    childEnv.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", module] + [str(a) for a in args],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, env=childEnv, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError("benchmark child %s exited before it was ready" % (module,))
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def threadedRate(call, seconds, workers):
    """
    Calls per second of ``call`` from ``workers`` threads, each calling it
    in a loop for ``seconds``; the first error a thread met is raised.
    """
    stop = time.monotonic() + seconds
    counts = [0] * workers
    errors = []

    def worker(i):
        try:
            while time.monotonic() < stop:
                call()
                counts[i] += 1
        except Exception as e:  # reported, not hidden
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.monotonic() - started)


def runAndReport(measure, extra=None):
    """
    In a benchmark's client process: run ``measure()`` (a Deferred of a
    dict) under the reactor, print the dict as one JSON line (``error``
    when it failed; ``extra()``'s entries added when it succeeded) and
    return the process's exit status.
    """
    from twisted.internet import reactor

    result = {}

    def finish(value):
        result.update(value)
        if extra is not None:
            result.update(extra())
        reactor.stop()

    def failed(f):
        result["error"] = f.getErrorMessage()
        reactor.stop()

    reactor.callWhenRunning(lambda: measure().addCallbacks(finish, failed))
    reactor.run()
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


def unwindOnTerminate(name, body, *args):
    """
    ``body(*args)`` with SIGTERM raising ``SystemExit`` as Ctrl-C would, so
    a benchmark that started processes and data directories removes them
    when it is killed.
    """
    import signal

    def terminated(signum, frame):
        raise SystemExit("%s bench: terminated by signal %d" % (name, signum))

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return body(*args)
    finally:
        signal.signal(signal.SIGTERM, previous)
