"""
``python -m raftmux.fuzz``: run the fuzz targets.

::

    python -m raftmux.fuzz --list
    python -m raftmux.fuzz TARGET [TARGET...] --seconds N [--work DIR]
    python -m raftmux.fuzz all --seconds N          # every target, one after another
    python -m raftmux.fuzz TARGET --reproduce FILE [FILE...]
    python -m raftmux.fuzz --write-seeds [TARGET...]

A run keeps its corpus and crash files under ``--work`` (default
``./fuzz-work/<target>``), starts from the target's seeds and its kept
regressions, and goes on after a crash (a new libFuzzer process for the
time left) until the time is spent or ``--max-crashes`` were found.  At
the end it prints one row per target: seconds, executions, coverage
(libFuzzer's ``cov``: edges, and ``ft``: features), corpus size and
crashes.  Arguments after ``--`` go to libFuzzer.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import traceback

from raftmux import fuzz

_DONE = re.compile(rb"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+)"
                   rb"(?: corp: (\d+)/)?")
_EXECS = re.compile(rb"stat::number_of_executed_units: (\d+)")
_PEAK = re.compile(rb"stat::peak_rss_mb:\s+(\d+)")
_CRASH = re.compile(rb"Test unit written to (\S+)")


def _listing():
    rows = []
    for t in fuzz.targets():
        rows.append("%-24s %s" % (t.name, t.invariant))
    return "\n".join(rows)


def reproduce(target, paths):
    """Run each file through ``target``; returns the number that failed."""
    failed = 0
    for path in paths:
        files = fuzz.inputFiles(path) if os.path.isdir(path) else [path]
        for name in files:
            with open(name, "rb") as f:
                data = f.read()
            try:
                target(data)
            except Exception:
                failed += 1
                print("%s: FAILED on %s (%d bytes)" % (target.name, name, len(data)))
                traceback.print_exc(file=sys.stdout)
            else:
                print("%s: ok on %s (%d bytes)" % (target.name, name, len(data)))
    return failed


def writeSeeds(names):
    for t in fuzz.targets():
        if names and t.name not in names:
            continue
        directory = fuzz.corpusDirectory(t.name)
        os.makedirs(directory, exist_ok=True)
        for old in os.listdir(directory):
            if old.startswith("seed-"):
                os.unlink(os.path.join(directory, old))
        seeds = t.seeds()
        for data in seeds:
            t(data)  # a seed that fails its own target is a bug in the target
            digest = hashlib.sha1(data).hexdigest()[:16]
            with open(os.path.join(directory, "seed-" + digest), "wb") as f:
                f.write(data)
        print("%s: %d seeds in %s" % (t.name, len(seeds), directory))


class Run:
    """The figures of one target's run, summed over its libFuzzer processes."""

    def __init__(self, name):
        self.name = name
        self.seconds = 0.0
        self.execs = 0
        self.cov = 0
        self.ft = 0
        self.corpus = 0
        self.peakRSS = 0
        self.crashes = []
        self.processes = 0

    def asJSON(self):
        return dict(self.__dict__)


def _parse(run, output):
    last = None
    for m in _DONE.finditer(output):
        last = m
    if last is not None:
        run.cov = max(run.cov, int(last.group(2)))
        run.ft = max(run.ft, int(last.group(3)))
        if last.group(4):
            run.corpus = int(last.group(4))
    m = _EXECS.search(output)
    if m:
        run.execs += int(m.group(1))
    elif last is not None:
        run.execs += int(last.group(1))
    m = _PEAK.search(output)
    if m:
        run.peakRSS = max(run.peakRSS, int(m.group(1)))
    for m in _CRASH.finditer(output):
        run.crashes.append(m.group(1).decode())


def fuzzTarget(t, seconds, work, maxCrashes, extra, verbose):
    """Fuzz ``t`` for ``seconds`` (in as many libFuzzer processes as crashes need)."""
    run = Run(t.name)
    corpus = os.path.join(work, "corpus")
    crashes = os.path.join(work, "crashes") + os.sep
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    inputs = [corpus] + [d for d in (fuzz.corpusDirectory(t.name), fuzz.regressionDirectory(t.name))
                         if os.path.isdir(d)]
    began = time.monotonic()
    while True:
        left = int(round(seconds - (time.monotonic() - began)))
        if left < 1 or len(run.crashes) >= maxCrashes:
            break
        args = [sys.executable, "-m", "raftmux.fuzz._run", t.name,
                "-max_total_time=%d" % (left,), "-print_final_stats=1",
                "-max_len=%d" % (t.maxLen,), "-timeout=30", "-rss_limit_mb=2048",
                "-artifact_prefix=" + crashes] + list(extra) + inputs
        logPath = os.path.join(work, "fuzz-%d.log" % (run.processes,))
        run.processes += 1
        with open(logPath, "wb") as log:
            proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            log.write(proc.stdout)
        if verbose:
            sys.stdout.buffer.write(proc.stdout)
            sys.stdout.flush()
        _parse(run, proc.stdout)
        if proc.returncode == 0:
            break
        if not _CRASH.search(proc.stdout):
            print("%s: libFuzzer ended with status %d and no crash file; see %s" % (
                t.name, proc.returncode, logPath), file=sys.stderr)
            break
    run.seconds = round(time.monotonic() - began, 1)
    return run


def table(runs):
    rows = [("target", "seconds", "executions", "cov", "ft", "corpus", "peak RSS MB",
             "crashes")]
    for r in runs:
        rows.append((r.name, "%.0f" % r.seconds, "{:,}".format(r.execs), str(r.cov),
                     str(r.ft), str(r.corpus), str(r.peakRSS), str(len(r.crashes))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m raftmux.fuzz",
                                     description="coverage-guided fuzzing with atheris")
    parser.add_argument("targets", nargs="*", help="target names, or 'all'")
    parser.add_argument("--list", action="store_true", help="name every target and its invariant")
    parser.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    parser.add_argument("--work", default="fuzz-work",
                        help="directory for corpora and crash files (default ./fuzz-work)")
    parser.add_argument("--max-crashes", type=int, default=10,
                        help="stop a target after this many crashes (default 10)")
    parser.add_argument("--reproduce", nargs="+", metavar="FILE",
                        help="run these inputs (files or directories) without atheris")
    parser.add_argument("--write-seeds", action="store_true",
                        help="write each target's seeds() into its corpus directory")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libFuzzer's output")
    options = parser.parse_args(argv)

    if options.list:
        print(_listing())
        return 0
    if options.write_seeds:
        writeSeeds(options.targets)
        return 0
    names = [t.name for t in fuzz.targets()] if options.targets == ["all"] else options.targets
    if not names:
        parser.error("name a target (see --list), or 'all'")
    try:
        chosen = [fuzz.lookup(n) for n in names]
    except KeyError as e:
        parser.error("no fuzz target %s (see --list)" % (e,))
    if options.reproduce:
        if len(chosen) != 1:
            parser.error("--reproduce takes exactly one target")
        return 1 if reproduce(chosen[0], options.reproduce) else 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        parser.error("atheris is not installed: pip install 'raftmux[fuzz]' (or atheris)")
    runs = []
    for t in chosen:
        work = os.path.join(options.work, t.name)
        run = fuzzTarget(t, options.seconds, work, options.max_crashes, extra, options.verbose)
        runs.append(run)
        print("%s: %.0f s, %s executions, cov %d, ft %d, %d crashes%s" % (
            run.name, run.seconds, "{:,}".format(run.execs), run.cov, run.ft,
            len(run.crashes), "".join("\n  " + c for c in run.crashes)), flush=True)
    if options.json:
        print(json.dumps([r.asJSON() for r in runs]))
    else:
        print(table(runs))
    return 1 if any(r.crashes for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
