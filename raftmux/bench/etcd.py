"""
etcd API benchmarks: etcd's own Go client (clientv3, etcd 3.4 as Debian
ships it, in ``raftmux/test/go/etcdclient``'s ``bench`` mode) against a
3-member etcd 3.4.23 cluster and a 3-member raftmux cluster on this
machine, measured in the same run, the same way.

Both clusters are started by ``raftmux.cluster.LocalCluster`` with their
defaults (election timeouts, snapshot counts) and their data in a real
disk directory (``RAFTMUX_BENCH_DIR`` or the system temporary directory;
the notes name its file system); both fsync their logs (etcd always does;
so does raftmux's WAL).  The leader is found through
``/v3/maintenance/status``.  One load process per phase: 64 goroutines,
each with its own clientv3 client (its own gRPC connection) to the
leader's client URL and one request outstanding, keys ``bench-0`` ..
``bench-999`` round-robin, 100-byte values:

- ``put``: ``KV.Put``, answered once committed and applied;
- ``get``: linearizable single-key ``KV.Range`` (ReadIndex);
- ``get-serializable``: serializable single-key ``KV.Range`` (local).

Each phase reports ops/s and the client's p50 and p99 latency.  The
issue's targets: raftmux at least 0.5x etcd's puts/s and 1.0x its
serializable gets/s; those rows' notes say met or missed.  All processes
(6 members, the load) share the machine's cores, and the Go load competes
with the server it measures.

``RAFTMUX_BENCH_PROFILE=DIR``: py-spy records the raftmux leader during
the put phase and prints its top functions to stderr (see ``node``).

The ``*-h2-cpu`` rows come from one more raftmux member, alone, with every
call into h2 timed (``raftmux.bench.h2time``), under the same load: h2's
own time per call beside the whole CPU per call that the target allows on
one core (one reactor thread serves a member's calls): 1 s / (target x etcd's rate).
Where h2 alone needs more, no work outside h2 can meet the target while h2
is the HTTP/2 engine.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

from raftmux.bench._harness import Result, unwindOnTerminate
from raftmux.bench.node import dataRoot, fileSystemOf, onReactor, profiled

CLIENTS = 64
VALUE_SIZE = 100
KEYSPACE = 1000
MEMBERS = 3
#: (phase of the Go program, row name, issue's target ratio or None)
PHASES = [("put", "put", 0.5), ("get", "get", None),
          ("getser", "get-serializable", 1.0)]


def load(binary, endpoint, phase, warmup, duration):
    """One phase of the Go load against ``endpoint``: its JSON figures."""
    out = subprocess.run(
        [binary, "bench", "--endpoint", endpoint, "--phase", phase,
         "--clients", str(CLIENTS), "--value-size", str(VALUE_SIZE),
         "--keyspace", str(KEYSPACE), "--warmup", "%gs" % (warmup,),
         "--duration", "%gs" % (duration,)],
        stdout=subprocess.PIPE, text=True, timeout=warmup + duration + 60, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if figures["errors"]:
        print("etcd bench: %s on %s: %d errors, e.g. %s" % (
            phase, endpoint, figures["errors"], figures["errorSample"]), file=sys.stderr)
    return figures


async def _untilWritable(cluster, leader, deadline):
    """A put through the leader's JSON gateway succeeds (bounded)."""
    from twisted.internet.task import deferLater
    body = json.dumps({"key": "YmVuY2gtcHJvYmU=", "value": "eA=="})  # bench-probe = x
    while True:
        try:
            code, _, _ = await cluster.request(leader, "POST", "/v3/kv/put", body)
            if code == 200:
                return
        except Exception:
            pass
        if cluster.reactor.seconds() > deadline:
            raise RuntimeError("%s accepts no writes" % (leader,))
        await deferLater(cluster.reactor, 0.2, lambda: None)


async def _measure(reactor, kind, root, binary, warmup, duration):
    """Start a ``kind`` cluster, run every phase against its leader, stop it."""
    from twisted.internet.threads import deferToThread

    from raftmux.testing.etcdcluster import newCluster, v3Leader
    flags = ["--log-level", "warn"] if kind == "raftmux" else []
    cluster = newCluster(kind, os.path.join(root, kind), reactor, flags=flags, size=MEMBERS)
    trigger = reactor.addSystemEventTrigger("before", "shutdown", cluster.stopAll)
    try:
        cluster.start()
        await cluster.waitHealthy(timeout=60)
        leader = await v3Leader(cluster, timeout=60)
        await _untilWritable(cluster, leader, reactor.seconds() + 60)
        member = cluster.member(leader)
        figures = {}
        for phase, _, _ in PHASES:
            if phase == "put" and kind == "raftmux":
                with profiled(member, "raftmux-leader", warmup + duration):
                    figures[phase] = await deferToThread(
                        load, binary, member.clientURL, phase, warmup, duration)
            else:
                figures[phase] = await deferToThread(
                    load, binary, member.clientURL, phase, warmup, duration)
        if await v3Leader(cluster, timeout=10) != leader:
            print("etcd bench: %s's leader changed during the run" % (kind,), file=sys.stderr)
    finally:
        reactor.removeSystemEventTrigger(trigger)
        await cluster.stopAll()
    return figures


def _snapshot(proc, out, before):
    """Ask the timed member for its CPU and h2 seconds (h2time's SIGUSR1)."""
    proc.send_signal(signal.SIGUSR1)
    for _ in range(200):
        with open(out) as f:
            lines = f.read().splitlines()
        if len(lines) > before:
            return json.loads(lines[before])
        time.sleep(0.05)
    raise RuntimeError("the timed member wrote no figures")


def h2Share(binary, root, warmup, duration):
    """
    One raftmux member alone, h2's calls timed, under each phase's load:
    ``{phase: {"h2": us per call inside h2, "cpu": us of process CPU per call}}``.
    """
    from raftmux.cluster.members import freePort
    client, peer = freePort(), freePort()
    clientURL, peerURL = "http://127.0.0.1:%d" % (client,), "http://127.0.0.1:%d" % (peer,)
    directory = os.path.join(root, "timed")
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, "h2time.jsonl")
    open(out, "w").close()
    args = [sys.executable, "-m", "raftmux.bench.h2time", out, "-n", "--pidfile=", "raftmux",
            "--name", "timed", "--data-dir", os.path.join(directory, "data"),
            "--log-level", "warn", "--listen-client-urls", clientURL,
            "--advertise-client-urls", clientURL, "--listen-peer-urls", peerURL,
            "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "timed=" + peerURL]
    with open(os.path.join(directory, "timed.log"), "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(clientURL + "/health", timeout=2) as answer:
                    if json.loads(answer.read()).get("health") == "true":
                        break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the timed member did not become healthy")
            time.sleep(0.2)
        share = {}
        for phase, _, target in PHASES:
            if target is None:
                continue
            seen = 2 * len(share)
            before = _snapshot(proc, out, seen)
            figures = load(binary, clientURL, phase, 0, warmup + duration)
            after = _snapshot(proc, out, seen + 1)
            calls = max(1, figures["ops"])
            share[phase] = {"h2": (after["h2"] - before["h2"]) / calls * 1e6,
                            "cpu": (after["cpu"] - before["cpu"]) / calls * 1e6,
                            "perSecond": figures["perSecond"]}
        return share
    finally:
        proc.kill()
        proc.wait()


def run(options):
    # SIGTERM unwinds like Ctrl-C, so every member and the data are removed.
    return unwindOnTerminate("etcd", _run, options)


def _run(options):
    from raftmux.cluster import ETCD
    from raftmux.testing.etcdcluster import grpcOnTheNode
    from raftmux.testing.gopeer import buildEtcdClient
    try:
        binary = buildEtcdClient()
    except unittest.SkipTest as e:
        raise SystemExit("etcd bench: %s" % (e,)) from None
    if not os.path.exists(ETCD):
        raise SystemExit("etcd bench: no baseline: %s is not installed" % (ETCD,))
    if not grpcOnTheNode():
        raise SystemExit("etcd bench: this raftmux serves no etcd gRPC API on the node")
    warmup, duration = (0.5, 3.0) if options.quick else (1.0, 10.0)
    root = dataRoot()
    where = "data in %s (%s); %d cores, load average %.1f at the start" % (
        os.path.dirname(root), fileSystemOf(root), os.cpu_count() or 0, os.getloadavg()[0])

    async def both(reactor):
        etcd = await _measure(reactor, "etcd", root, binary, warmup, duration)
        ours = await _measure(reactor, "raftmux", root, binary, warmup, duration)
        return etcd, ours
    try:
        etcd, ours = onReactor(both)
        share = h2Share(binary, root, warmup, duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    how = "%d members, %d clientv3 clients x 1 outstanding, %d B, %gs after %gs warm-up, %s" % (
        MEMBERS, CLIENTS, VALUE_SIZE, duration, warmup, where)
    results = []
    for phase, name, target in PHASES:
        mine, theirs = ours[phase], etcd[phase]
        row = Result(name, "ops/s", mine["perSecond"], theirs["perSecond"], target=target,
                     notes=_notes(phase, mine, theirs))
        if target is not None:
            row.notes = "%s; %s" % ("met" if row.ratio and row.ratio >= target else "missed",
                                    row.notes)
        if phase == "put":
            row.notes += "; " + how
            row.extra = {"raftmux": ours, "etcd": etcd, "setup": how}
        results.append(row)
        for q in ("p50", "p99"):
            results.append(Result("%s-%s" % (name, q), "ms", mine[q], theirs[q],
                                  higherIsBetter=False, notes="client-side latency"))
        if target is not None:
            timed = share[phase]
            results.append(Result(
                "%s-h2-cpu" % (name,), "us/call", timed["h2"],
                1e6 / (target * theirs["perSecond"]), higherIsBetter=False,
                notes="time inside h2's H2Connection calls per call, one raftmux member alone "
                      "under the same load (every call into h2 timed: %.0f calls/s, %.0f us of "
                      "CPU per call in all); baseline: the whole CPU per call that %gx etcd's "
                      "rate allows on one core. Below 1x, h2 alone exceeds it"
                      % (timed["perSecond"], timed["cpu"], target)))
    return results


def _notes(phase, mine, theirs):
    what = {"put": "KV.Put to the leader, both fsync",
            "get": "linearizable KV.Range on the leader (ReadIndex)",
            "getser": "serializable KV.Range on the leader"}[phase]
    errors = mine["errors"] + theirs["errors"]
    return what + ("; %d errors (raftmux %d, etcd %d)" % (
        errors, mine["errors"], theirs["errors"]) if errors else "")
