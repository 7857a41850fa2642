# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
What a chaos run prints and leaves behind: a summary table (or one JSON
object), and, like Jepsen, plots beside the history: each operation's
latency over time and the throughput per second, with the fault windows
shaded.  Plots need matplotlib (the ``chaos`` extra); without it the run
says so and goes on.
"""

from typing import Any

from raftmux.chaos.history import CAS, FAIL, INFO, OK, READ, WRITE

__all__ = ["summarize", "table", "plot"]


def _counts(ops):
    out = {}
    for f in (READ, WRITE, CAS):
        mine = [op for op in ops if op.f == f]
        row = {"total": len(mine), "ok": sum(op.type == OK for op in mine),
               "failed": sum(op.type == FAIL for op in mine),
               "indeterminate": sum(op.type == INFO for op in mine)}
        if f == CAS:
            row["set"] = sum(op.type == OK and op.result is True for op in mine)
            row["compare_failed"] = sum(op.type == OK and op.result is False for op in mine)
        out[f] = row
    out["all"] = {k: sum(out[f][k] for f in (READ, WRITE, CAS))
                  for k in ("total", "ok", "failed", "indeterminate")}
    return out


def summarize(run, history, result, paths, plots=(), plotsSkipped=None, errors=()):
    """
    The run as one JSON-able dict; ``"valid"`` is True only when the
    history was found linearizable.
    """
    windows = history.windows()
    counts: dict[Any, Any] = {}
    for kind, *_ in windows:
        counts[kind] = counts.get(kind, 0) + 1
    return {
        "valid": result.valid is True,
        "verdict": result.verdict,
        "target": run["target"], "nodes": run["nodes"], "seed": run["seed"],
        "time": run["time"], "reads": run["reads"], "nemeses": run["nemeses"],
        "ops": _counts(history.ops),
        "nemesis": {"counts": counts,
                    "events": [{"kind": k, "start": round(s, 3),
                                "stop": None if e is None else round(e, 3), "detail": d}
                               for k, s, e, d in windows]},
        "anomalies": [a.asJSON() for a in result.anomalies],
        "checker": {"checked": result.checked, "steps": result.steps,
                    "seconds": round(result.seconds, 3), "keys": result.keys},
        "history": paths.get("history"), "directory": paths.get("directory"),
        "plots": list(plots), "plots_skipped": plotsSkipped, "errors": list(errors),
    }


def _when(t):
    return "%8.3f" % (t,) if t is not None else "       -"


def table(summary, anomalies=()):
    """The summary for people; ``anomalies``: the checker's ``Anomaly`` objects."""
    lines = ["raftmux chaos: target %s, %d nodes, %.0f s, seed %s, %s reads, nemeses: %s" % (
        summary["target"], summary["nodes"], summary["time"], summary["seed"],
        summary["reads"], ", ".join(summary["nemeses"]) or "none"), ""]
    lines.append("%-10s %7s %7s %7s %14s" % ("operation", "total", "ok", "failed",
                                              "indeterminate"))
    for f in (READ, WRITE, CAS, "all"):
        row = summary["ops"][f]
        extra = ""
        if f == CAS:
            extra = "   (set %d, compare failed %d)" % (row["set"], row["compare_failed"])
        lines.append("%-10s %7d %7d %7d %14d%s" % (f, row["total"], row["ok"], row["failed"],
                                                    row["indeterminate"], extra))
    lines.append("")
    counts = summary["nemesis"]["counts"]
    lines.append("nemesis    %s" % (", ".join("%s x%d" % kv for kv in sorted(counts.items()))
                                    or "none"))
    checker = summary["checker"]
    lines.append("verdict    %s  (%d operations checked in %.2f s)" % (
        summary["verdict"].upper() if summary["verdict"] != "linearizable"
        else summary["verdict"], checker["checked"], checker["seconds"]))
    if not anomalies:
        lines.append("anomalies  none")
    for anomaly in anomalies:
        lines.append("anomaly    %s" % (anomaly.explain(),))
        lines.append("           %s:" % ("a few operations that cannot be linearized "
                                         "on their own" if anomaly.minimal else
                                         "the key's operations (no smaller window proven)"))
        lines.append("           %8s %8s  %-4s %-7s %-5s %s" % (
            "invoke", "complete", "node", "process", "type", "operation"))
        shown = anomaly.ops if len(anomaly.ops) <= 40 else anomaly.ops[-40:]
        rows = [(op, "  <- cannot take effect" if op is anomaly.culprit else "")
                for op in shown]
        rows += [(op, "  (outside the window: wrote a value seen in it)")
                 for op in getattr(anomaly, "context", ())]
        for op, mark in sorted(rows, key=lambda r: r[0].invoke):
            lines.append("           %s %s  %-4s %-7s %-5s %s%s" % (
                _when(op.invoke), _when(op.complete if op.type != INFO else None),
                op.node or "-", op.process, op.type, op.describe(), mark))
    for error in summary["errors"]:
        lines.append("error      %s" % (error,))
    lines.append("history    %s" % (summary["history"],))
    if summary["plots"]:
        lines.append("plots      %s" % (", ".join(summary["plots"]),))
    elif summary["plots_skipped"]:
        lines.append("plots      none: %s" % (summary["plots_skipped"],))
    return "\n".join(lines) + "\n"


_COLOURS = {OK: "#2a9d3a", FAIL: "#d62728", INFO: "#ff9f1c"}
_MARKERS = {READ: "o", WRITE: "^", CAS: "s"}


def plot(history, directory, title=""):
    """
    Write ``latency.png`` and ``rate.png`` into ``directory``; returns
    ``(paths, None)``, or ``([], reason)`` when matplotlib is missing.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed (pip install 'raftmux[chaos]')"
    import os

    ops = [op for op in history.ops if op.complete is not None]
    end = max([op.complete for op in ops] + [e.time for e in history.events] + [1.0])
    windows = history.windows()
    kinds = sorted({w[0] for w in windows})
    palette = {"partition-halves": "#9ecae1", "partition-leader": "#6baed6",
               "partition-bridge": "#c6dbef", "kill": "#fc9272", "pause": "#bcbddc",
               "loss": "#fdd0a2", "delay": "#d9d9d9"}
    shade = {k: palette.get(k, "#e5e5e5") for k in kinds}

    def shadeWindows(ax):
        seen = set()
        for kind, start, stop, _ in windows:
            ax.axvspan(start, stop if stop is not None else end, color=shade[kind], alpha=0.35,
                       label=kind if kind not in seen else None, zorder=0)
            seen.add(kind)

    paths = []
    fig, ax = plt.subplots(figsize=(11, 5))
    shadeWindows(ax)
    for f in (READ, WRITE, CAS):
        for t in (OK, FAIL, INFO):
            pts = [(op.invoke, max(op.complete - op.invoke, 1e-4) * 1000.0)
                   for op in ops if op.f == f and op.type == t]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.scatter(xs, ys, s=6, c=_COLOURS[t], marker=_MARKERS[f], alpha=0.6,
                           label="%s %s" % (f, t), linewidths=0)
    ax.set_yscale("log")
    ax.set_xlim(0, end)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency %s" % (title,))
    ax.legend(loc="upper left", fontsize=7, ncol=3, markerscale=2)
    fig.tight_layout()
    path = os.path.join(directory, "latency.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(11, 4))
    shadeWindows(ax)
    buckets = int(end) + 1
    for f in (READ, WRITE, CAS):
        for t in (OK, FAIL, INFO):
            counts = [0] * buckets
            for op in ops:
                if op.f == f and op.type == t:
                    counts[min(int(op.complete), buckets - 1)] += 1
            if any(counts):
                ax.plot([i + 0.5 for i in range(buckets)], counts, color=_COLOURS[t],
                        linestyle={READ: "-", WRITE: "--", CAS: ":"}[f],
                        label="%s %s" % (f, t))
    ax.set_xlim(0, end)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("operations per second")
    ax.set_title("throughput %s" % (title,))
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    fig.tight_layout()
    path = os.path.join(directory, "rate.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return paths, None
