"""
limits benchmark (issue 18, point 5): floods and huge declared lengths
against a real ``twistd raftmux`` node on 127.0.0.1, while a client keeps
writing to it.

For each attack of ``raftmux.testing.limits`` a fresh one-member node is
started (peer and client URLs on two ports); ``Writer`` keeps 4 keep-alive
connections doing ``PUT /kv/...`` (100 B) for the whole run.  The table has,
per attack: its size (connections or streams), the writes per second in
the seconds before it and while it runs, the node's RSS before, at its
peak (sampled every 50 ms) and 2 s after the attack's sockets are closed,
the node's CPU seconds and log lines during it, what the node did
(``outcome``) and whether that is the limit working (``ok``) or the
problem found.  ``--quick`` runs everything at a fifth of the size.

The process raises its own open-file limit (the node inherits it): 5,000
idle connections need 10,000 descriptors between the two ends.
"""

import os
import sys
import threading
import time

from raftmux.bench._harness import Result
from raftmux.testing import limits

WRITERS = 4


def _rate(writer, node, seconds):
    """(writes per second, node CPU seconds per second) over ``seconds``."""
    before, cpu = writer.ok, node.cpuSeconds()
    time.sleep(seconds)
    return (writer.ok - before) / seconds, (node.cpuSeconds() - cpu) / seconds


def _quiet(node, cpuRate, timeout=30.0):
    """Wait (up to ``timeout``) until the node uses no more CPU than the writes alone did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cpu = node.cpuSeconds()
        time.sleep(1.0)
        if node.cpuSeconds() - cpu <= cpuRate + 0.1:
            return


def measure(makeAttack, window, settle, beforeSeconds):
    """Run one attack against a fresh node; returns a ``Result``."""
    with limits.NodeProcess() as node:
        writer = limits.Writer("127.0.0.1", node.clientPort, connections=WRITERS).start()
        try:
            time.sleep(0.5)
            before, cpuRate = _rate(writer, node, beforeSeconds)
            attack = makeAttack(node)
            rssBefore, cpuBefore, linesBefore = node.rss(), node.cpuSeconds(), node.lineCount
            okBefore, failedBefore = writer.ok, writer.failed
            with limits.RSSSampler(node) as sampler:
                started = threading.Event()
                began = time.monotonic()

                def run():
                    try:
                        attack.start()
                    finally:
                        started.set()
                thread = threading.Thread(target=run, daemon=True)
                thread.start()
                while time.monotonic() - began < window or not started.is_set():
                    time.sleep(0.2)
                    if started.is_set():
                        attack.tick()
                duringSeconds = time.monotonic() - began
                during = (writer.ok - okBefore) / duringSeconds
                failed = writer.failed - failedBefore
                thread.join()
                attack.settle(settle)
                settled = time.monotonic() - began
                peak = sampler.peak
                spooled = node.spooledBytes()
            # The attack's CPU: the node's, less what the writes cost before it.
            cpu = node.cpuSeconds() - cpuBefore - cpuRate * settled
            lines = node.lineCount - linesBefore
            outcome, problem = attack.outcome(), attack.expected()
            attack.close()
            _quiet(node, cpuRate)
            rssAfter = node.rss()
            if not node.alive():
                problem = "the node died"
        finally:
            writer.stop()
    mb = 1 << 20
    return Result(
        attack.name, "writes/s", during, before,
        notes=outcome,
        extra={"size": attack.size, "unit": attack.unit, "limit": attack.what,
               "rssBefore": rssBefore / mb, "rssPeak": peak / mb, "rssAfter": rssAfter / mb,
               "cpuSeconds": cpu, "logLines": lines, "writeFailures": failed,
               "spooledMB": spooled / mb, "limited": attack.limited,
               "seconds": duringSeconds, "problem": problem})


def run(options):
    limits.raiseFileLimit(65536)
    scale = 0.2 if options.quick else 1.0
    bodyBytes = (8 if options.quick else 64) << 20
    window = 3.0 if options.quick else 5.0
    results = []
    # Build each attack against its own node: the list gives the order and sizes.
    names = []
    with limits.NodeProcess() as probe:
        for a in limits.allAttacks(probe, scale, bodyBytes):
            names.append(a.name)
    only = os.environ.get("RAFTMUX_BENCH_ONLY")   # a part of attack names, to run fewer
    for index, name in enumerate(names):
        if only and only not in name:
            continue
        def makeAttack(node, index=index):
            return limits.allAttacks(node, scale, bodyBytes)[index]
        print("limits: %s ..." % (name,), file=sys.stderr, flush=True)
        results.append(measure(makeAttack, window, settle=60.0,
                               beforeSeconds=2.0 if options.quick else 3.0))
        r = results[-1]
        print("limits: %s: %.0f -> %.0f writes/s, RSS %.0f/%.0f/%.0f MB, %s%s" % (
            name, r.baseline or 0, r.value, r.extra["rssBefore"], r.extra["rssPeak"],
            r.extra["rssAfter"], r.notes,
            "; PROBLEM: " + r.extra["problem"] if r.extra["problem"] else ""),
            file=sys.stderr, flush=True)
    return results


def formatTable(part, results):
    rows = [("attack", "size", "writes/s before -> during", "node RSS MB before/peak/after",
             "attack CPU s", "log lines", "outcome", "verdict")]
    for r in results:
        e = r.extra
        rows.append((
            r.name, "{:,} {}".format(e["size"], e["unit"]),
            "%.0f -> %.0f%s" % (r.baseline or 0, r.value,
                               " (%d failed)" % e["writeFailures"] if e["writeFailures"] else ""),
            "%.0f / %.0f / %.0f" % (e["rssBefore"], e["rssPeak"], e["rssAfter"]),
            "%.1f" % (max(0.0, e["cpuSeconds"]),), str(e["logLines"]),
            r.notes + ("; %.0f MB of bodies spooled to disk" % (e["spooledMB"],)
                       if e["spooledMB"] >= 1 else ""),
            ("PROBLEM: " + e["problem"]) if e["problem"] else
            ("ok: " if e["limited"] else "NO LIMIT: ") + e["limit"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "raftmux.bench %s\n%s" % (part, "\n".join(lines))
