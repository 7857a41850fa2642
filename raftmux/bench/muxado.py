"""
muxado benchmarks, each beside its baseline from the same run:

- ``bulk``: one stream's throughput vs raw Twisted TCP (target >= 0.8x);
- ``open``: open a stream, 4-byte echo, close, one after another, vs a new
  Twisted TCP connection per echo (target >= 3x);
- ``concurrent``: 1,000 streams moving 1 MiB each at once: completes; peak
  RSS of both processes reported.

Server and client run in separate processes on loopback.
"""

import json
import os
import subprocess
import sys

from raftmux.bench._harness import Result, median, serverProcess

PEER = "raftmux.bench._muxadopeer"


def _peakRSS(pid):
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


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
        return figures, _peakRSS(proc.pid)


def run(options):
    repeats = 1 if options.quick else 3
    bulkBytes = (256 if options.quick else 1024) * 1024 * 1024
    opens = 1000 if options.quick else 4000

    raw = median([measure("bulk", "raw", bulkBytes)[0]["bytesPerSecond"] for _ in range(repeats)])
    mux = median([measure("bulk", "muxado", bulkBytes)[0]["bytesPerSecond"]
                  for _ in range(repeats)])
    results = [Result("bulk", "MB/s", mux / 1e6, raw / 1e6, target=0.8,
                      notes="one stream, %d MiB, median of %d, Go's 256 KiB window"
                      % (bulkBytes >> 20, repeats))]
    # The same with a 4 MiB window on both ends (raftmux to raftmux only: a Go
    # peer with its default window would be overrun), to show the window's share.
    big = {"RAFTMUX_BENCH_WINDOW": str(4 << 20), "RAFTMUX_BENCH_THRESHOLD": str(1 << 20)}
    wide = median([measure("bulk", "muxado", bulkBytes, env=big)[0]["bytesPerSecond"]
                   for _ in range(repeats)])
    results.append(Result("bulk-window4m", "MB/s", wide / 1e6, raw / 1e6,
                          notes="as bulk, 4 MiB window both ends (not Go-compatible)"))

    raw = median([measure("open", "raw", opens)[0]["perSecond"] for _ in range(repeats)])
    mux = median([measure("open", "muxado", opens)[0]["perSecond"] for _ in range(repeats)])
    results.append(Result("open", "echoes/s", mux, raw, target=3.0,
                          notes="open+4-byte echo+close, sequential, %d each" % (opens,)))

    streams = 1000
    figures, serverRSS = measure("concurrent", "muxado", streams, 1024 * 1024)
    results.append(Result(
        "concurrent", "MB/s", figures["bytesPerSecond"] / 1e6, None,
        notes="%d streams x 1 MiB in %.2f s; peak RSS client %d MiB, server %d MiB" % (
            streams, figures["seconds"], figures["clientMaxRSSKiB"] >> 10, serverRSS >> 10),
        extra={"clientPeakRSSKiB": figures["clientMaxRSSKiB"], "serverPeakRSSKiB": serverRSS,
               "seconds": figures["seconds"]}))
    return results
