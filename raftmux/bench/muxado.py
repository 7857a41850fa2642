"""
muxado benchmarks, each beside its baseline from the same run:

- ``bulk``: one stream's throughput vs raw Twisted TCP (target >= 0.8x);
- ``open``: open a stream, 4-byte echo, close, one after another, vs a new
  Twisted TCP connection per echo (target >= 3x);
- ``open-ceiling``: 4-byte echoes one after another on one established
  Twisted TCP connection, against ``open``'s baseline: each echo is one
  round trip and nothing else, so this ratio bounds ``open``'s on the same
  machine in the same state (a loaded machine raises both);
- ``concurrent``: 1,000 streams moving 1 MiB each at once: completes; peak
  RSS of both processes reported.
- ``v1-open`` and ``v1-bulk``: the Go v1 client (our test peer on Debian's
  muxado v1) against our server vs against the Go v1 server, for
  open+echo+close per second and one stream's echoed bulk MB/s (target >= 1x).
  Skipped, with the reason, without Go.

Server and client run in separate processes on loopback.
"""

import json
import os
import subprocess
import sys
import unittest
from contextlib import contextmanager

from raftmux.bench._harness import Result, interleavedResult, median, serverProcess
from raftmux.testing.procstat import cpuSeconds, statusKiB

PEER = "raftmux.bench._muxadopeer"


def measure(test, mode, *args, env=None):
    """Run one client against a fresh server; returns (client figures, server peak RSS KiB)."""
    childEnv = dict(os.environ, **(env or {}))
    with serverProcess(PEER, "server", mode, env=env) as (proc, port):
        out = subprocess.run([sys.executable, "-m", PEER, "client", test, mode, port]
                             + [str(a) for a in args],
                             capture_output=True, text=True, timeout=600, env=childEnv)
        lines = out.stdout.strip().splitlines()
        figures = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
        if "error" in figures:
            raise RuntimeError("%s/%s failed: %s" % (test, mode, figures["error"]))
        return figures, statusKiB(proc.pid, "VmHWM") or 0


@contextmanager
def goV1Server(binary):
    """The Go v1 test peer's server role; yields (process, port)."""
    proc = subprocess.Popen([binary, "-serve"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc, str(json.loads(proc.stdout.readline())["listening"])
    finally:
        proc.kill()
        proc.wait()


def goV1Client(binary, server, *flags):
    """
    Run the Go v1 client against ``server`` ("go" or "raftmux"): its result
    line, with ``serverCPU``, the CPU seconds the server process spent on it.
    """
    serving = goV1Server(binary) if server == "go" else serverProcess(PEER, "server", "mirror")
    with serving as (proc, port):
        before = cpuSeconds(proc.pid)
        out = subprocess.run([binary, "-dial", "127.0.0.1:" + port] + list(flags),
                             capture_output=True, text=True, timeout=600)
        serverCPU = cpuSeconds(proc.pid) - before
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result.get("ok"):
        raise RuntimeError("Go v1 client against %s failed: %r" % (server, result))
    result["serverCPU"] = serverCPU
    return result


def goV1Results(repeats, quick):
    from raftmux.testing.gopeer import buildMuxado1Peer
    try:
        binary = buildMuxado1Peer()
    except unittest.SkipTest as e:
        return [Result("v1-open", "echoes/s", None, notes="skipped: %s" % (e,)),
                Result("v1-bulk", "MB/s", None, notes="skipped: %s" % (e,))]
    seconds = "2" if quick else "5"
    size = str((64 if quick else 256) << 20)
    # Alternating, so both servers meet the same spells of a busy machine.
    rates: dict[str, list[float]] = {"raftmux": [], "go": []}
    bulkRuns: dict[str, list[dict]] = {"raftmux": [], "go": []}
    for _ in range(repeats):
        for server in ("raftmux", "go"):
            rates[server].append(goV1Client(binary, server, "-bench-echo",
                                            "-seconds", seconds)["rate"])
            bulkRuns[server].append(goV1Client(binary, server, "-bench-bulk", "-size", size))
    bulk = {server: [r["mbps"] for r in runs] for server, runs in bulkRuns.items()}
    cpu = {server: median([r["serverCPU"] / (r["received"] / 1e6) * 1e3 for r in runs])
           for server, runs in bulkRuns.items()}
    return [
        interleavedResult("v1-open", "echoes/s", rates["raftmux"], rates["go"], target=1.0,
                          notes="Go v1 client: open+4-byte echo+close for %s s, our server vs "
                                "Go's; median of %d" % (seconds, repeats)),
        interleavedResult("v1-bulk", "MB/s", bulk["raftmux"], bulk["go"], target=1.0,
                          notes="Go v1 client: %s MiB echoed on one stream, our server vs Go's; "
                                "median of %d" % (int(size) >> 20, repeats)),
        Result("v1-bulk-server-cpu", "ms/MB", cpu["raftmux"], cpu["go"], higherIsBetter=False,
               notes="the server process's CPU per MB echoed in the v1-bulk runs (/proc), ours "
                     "vs Go v1's: the share of the 2 cores the Go client is left"),
    ]


def run(options):
    repeats = 1 if options.quick else 3
    rounds = 1 if options.quick else 5
    bulkBytes = (256 if options.quick else 1024) * 1024 * 1024
    opens = 1000 if options.quick else 4000
    # The same with a 4 MiB window on both ends (raftmux to raftmux only: a Go
    # peer with its default window would be overrun), to show the window's share.
    big = {"RAFTMUX_BENCH_WINDOW": str(4 << 20), "RAFTMUX_BENCH_THRESHOLD": str(1 << 20)}

    # Each round runs a figure and its baseline one after the other, so a
    # spell of load meets both (the per-round ratios show its width).
    figures: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, test, mode, env in (("raw", "bulk", "raw", None),
                                      ("mux", "bulk", "muxado", None),
                                      ("wide", "bulk", "muxado", big)):
            figures.setdefault(name, []).append(
                measure(test, mode, bulkBytes, env=env)[0]["bytesPerSecond"] / 1e6)
    for _ in range(rounds):
        for name, test, mode, count in (("tcp", "open", "raw", opens),
                                        ("open", "open", "muxado", opens),
                                        ("pong", "pingpong", "raw", opens * 5)):
            figures.setdefault(name, []).append(measure(test, mode, count)[0]["perSecond"])

    results = [
        interleavedResult("bulk", "MB/s", figures["mux"], figures["raw"], target=0.8,
                          notes="one stream, %d MiB, median of %d, Go's 256 KiB window"
                          % (bulkBytes >> 20, repeats)),
        interleavedResult("bulk-window4m", "MB/s", figures["wide"], figures["raw"],
                          notes="as bulk, 4 MiB window both ends (not Go-compatible)"),
        interleavedResult("open", "echoes/s", figures["open"], figures["tcp"], target=3.0,
                          notes="open+4-byte echo+close, sequential, %d each, median of %d"
                          % (opens, rounds)),
        # The ceiling of ``open``: sequential echoes need one round trip each
        # (strace: one send, one recv, two epoll_wait and two epoll_ctl a side
        # for an open as for a ping-pong echo), and here they pay nothing else
        # (no stream, no connection), so no stream multiplexer over one
        # Twisted connection can do better than this ratio.
        interleavedResult("open-ceiling", "echoes/s", figures["pong"], figures["tcp"],
                          notes="4-byte echoes one after another on one established Twisted "
                                "TCP connection (%d), vs the same baseline as open: the most "
                                "any stream opened per echo can reach" % (opens * 5,)),
    ]

    results.extend(goV1Results(rounds, options.quick))

    streams = 1000
    many, serverRSS = measure("concurrent", "muxado", streams, 1024 * 1024)
    results.append(Result(
        "concurrent", "MB/s", many["bytesPerSecond"] / 1e6, None,
        notes="%d streams x 1 MiB in %.2f s; peak RSS client %d MiB, server %d MiB" % (
            streams, many["seconds"], many["clientMaxRSSKiB"] >> 10, serverRSS >> 10),
        extra={"clientPeakRSSKiB": many["clientMaxRSSKiB"], "serverPeakRSSKiB": serverRSS,
               "seconds": many["seconds"]}))
    return results
