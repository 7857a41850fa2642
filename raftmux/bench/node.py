"""
node benchmarks (issue 7, point 7): a 3-member raftmux cluster on loopback,
fsync on, beside a 3-member PySyncObj cluster on the same machine, same
value size (100 B), measured in the same run.

Each system runs as 3 processes (one per member; raftmux's started by
``raftmux.cluster.LocalCluster``, as ``python -m raftmux.cluster`` does)
with its data in a real disk directory (``RAFTMUX_BENCH_DIR`` or the system temporary directory;
the table's notes name it and its file system).  One load process,
``_nodeclient``, drives either system the same way: 64 persistent HTTP/1.1
connections to the leader, one request outstanding on each, keys
``bench-0`` .. ``bench-999`` round-robin.

- ``write``: ``PUT /kv/<key>`` (100 B), answered once committed and applied
  on the leader: raftmux's ``twistd raftmux`` node (fdatasync of each
  Ready's entries), against PySyncObj (``ReplDict.set`` with a callback)
  behind the same Twisted HTTP Site (``_pysyncobjnode``) with its journal
  synced before it sends anything (stock PySyncObj never syncs; see
  ``_pysyncobjnode``).  PySyncObj runs in two configurations (``CONFIGS``:
  AppendEntries at once per command, or batched every 2 ms) and the
  faster one is the baseline;
- ``write-p50``, ``write-p99``: latency of those writes as the client sees
  it (ms, lower is better), against the same PySyncObj configuration;
- ``write (vs pysyncobj stock, no fsync)``: the same raftmux figure against
  unmodified PySyncObj (journal in an mmap, never synced while running);
- ``write (vs pysyncobj in-process)``: against PySyncObj's best case, a
  closed loop of 64 outstanding calls inside the leader's process (no HTTP,
  no client process), journal synced;
- ``read``: linearizable ``GET /kv/<key>`` (ReadIndex) on the raftmux
  leader; PySyncObj has no linearizable read, so no baseline;
- ``read-serializable``: ``GET /kv/<key>?serializable=true`` on the leader,
  against PySyncObj's local ``ReplDict.get`` behind the same HTTP front end.

All processes (3 members per system, the load process) share the machine's
cores, so a figure is the cluster's throughput on this machine, not one
node's.  raftmux snapshots every 10,000 entries (its default), which falls
inside the runs; PySyncObj compacts after 300 s, which never does.

Needs PySyncObj (``pip install pysyncobj``); without it, the raftmux figures
are printed with no baseline.  ``RAFTMUX_BENCH_PROFILE=DIR``: py-spy records
the raftmux leader (and the PySyncObj leader) during the first write run,
writes the collapsed stacks to DIR and prints the top functions to stderr.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter

from raftmux.bench._harness import Result, median, unwindOnTerminate

CLIENT = "raftmux.bench._nodeclient"
PYSYNCOBJ = "raftmux.bench._pysyncobjnode"
CONCURRENCY = 64
VALUE_SIZE = 100
KEYSPACE = 1000
MEMBERS = 3

# -- processes -------------------------------------------------------------------

def _dieWithParent():
    """preexec_fn: SIGTERM this child if the benchmark process dies (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Processes:
    """Every child started through ``start`` is ended when the block ends."""

    def __init__(self):
        self.procs = []

    def start(self, args, logPath=None, **kw):
        out = open(logPath, "wb") if logPath else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(args, stdout=kw.pop("stdout", out), stderr=out,
                                    start_new_session=True, preexec_fn=_dieWithParent, **kw)
        finally:
            if logPath:
                out.close()
        self.procs.append(proc)
        return proc

    def stopAll(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for f in (p.stdin, p.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopAll()


def freePorts(n):
    """``n`` distinct free ports (see ``raftmux.cluster.freePort``)."""
    from raftmux.cluster import freePort

    return [freePort() for _ in range(n)]


def dataRoot():
    base = os.environ.get("RAFTMUX_BENCH_DIR") or tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="raftmux-bench-node-", dir=base)


def fileSystemOf(path):
    """``"ext4 on /dev/vda"`` for the mount holding path (Linux), else ``"?"``."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and \
                        len(mount) >= len(best[0]):
                    best = (mount, fstype, device)
    except OSError:
        return "?"
    return "%s on %s" % (best[1], best[2])


def _http(method, url, body=None, timeout=2.0):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _waitFor(what, check, timeout, procs=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError("%s: a member exited (code %s)" % (what, p.returncode))
        try:
            value = check()
        except (OSError, ValueError) as e:
            value, last = None, e
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError("%s: not within %ds (%s)" % (what, timeout, last))


def load(mode, port, warmup, duration):
    out = subprocess.run(
        [sys.executable, "-m", CLIENT, mode, "127.0.0.1", str(port), str(CONCURRENCY),
         str(warmup), str(duration), str(VALUE_SIZE), str(KEYSPACE)],
        stdout=subprocess.PIPE, text=True, timeout=warmup + duration + 60, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if figures["errors"]:
        print("node bench: %s on port %d: %d errors, e.g. %s" % (
            mode, port, figures["errors"], figures["errorSample"]), file=sys.stderr)
    return figures


# -- raftmux -------------------------------------------------------------------------

def onReactor(main):
    """
    Run ``main(reactor)`` (a coroutine function) on the reactor and return
    its result once the reactor has stopped: a benchmark part runs it once.
    Ctrl-C or SIGTERM stop the reactor, and with it the cluster.
    """
    from twisted.internet import defer, reactor
    from twisted.python.failure import Failure

    outcome = []

    def go():
        d = defer.ensureDeferred(main(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(go)
    reactor.run()
    if not outcome:
        raise SystemExit("node bench: interrupted")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


async def _untilWritable(cluster, leader, deadline):
    from twisted.internet.task import deferLater
    while True:
        try:
            code, _, _ = await cluster.request(leader, "PUT", "/kv/bench-probe",
                                               b"x" * VALUE_SIZE)
            if code == 200:
                return
        except Exception:
            pass
        if cluster.reactor.seconds() > deadline:
            raise RuntimeError("raftmux accepts no writes on %s" % (leader,))
        await deferLater(cluster.reactor, 0.2, lambda: None)


async def _measureRaftmux(reactor, root, repeats, warmup, duration):
    """
    A ``raftmux.cluster.LocalCluster`` of MEMBERS one-port members (its
    guardian kills them should this process die), then the load, run in a
    thread so the reactor keeps reading the members' output.
    """
    from twisted.internet.threads import deferToThread

    from raftmux.cluster import LocalCluster
    cluster = LocalCluster.create(os.path.join(root, "raftmux"), size=MEMBERS, ports="auto",
                                  onePort=True, token="bench", reactor=reactor,
                                  flags=["--log-level", "warn"])
    reactor.addSystemEventTrigger("before", "shutdown", cluster.stopAll)
    try:
        cluster.start()
        await cluster.waitHealthy(timeout=60)
        leader = await cluster.waitLeader(timeout=60)
        await _untilWritable(cluster, leader, reactor.seconds() + 60)
        member = cluster.member(leader)
        port = int(member.clientURL.rsplit(":", 1)[1])
        writes = []
        for i in range(repeats):
            if i == 0:
                with profiled(member, "raftmux-leader", warmup + duration):
                    writes.append(await deferToThread(load, "put", port, warmup, duration))
            else:
                writes.append(await deferToThread(load, "put", port, warmup, duration))
        reads = [await deferToThread(load, "get", port, warmup, duration)
                 for _ in range(repeats)]
        serial = [await deferToThread(load, "getser", port, warmup, duration)
                  for _ in range(repeats)]
    finally:
        await cluster.stopAll()
    return writes, reads, serial


# -- PySyncObj -------------------------------------------------------------------------

def havePySyncObj():
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        return False
    return True


class PySyncObjCluster:
    def __init__(self, procs, root, fsync, label, extraArgs=()):
        self.extraArgs = list(extraArgs)
        self.procs = procs
        self.root = root
        self.fsync = fsync
        self.label = label
        self.ports = freePorts(MEMBERS)
        self.members = []

    def start(self):
        addrs = ["127.0.0.1:%d" % (p,) for p in self.ports]
        for i, me in enumerate(addrs):
            others = ",".join(a for a in addrs if a != me)
            dataDir = os.path.join(self.root, "pysyncobj-%s-%d" % (self.label, i + 1))
            args = [sys.executable, "-m", PYSYNCOBJ, me, others, dataDir]
            if self.fsync:
                args.append("--fsync")
            args += self.extraArgs
            proc = self.procs.start(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                    logPath=os.path.join(self.root, "pysyncobj-%s-%d.log" % (
                                        self.label, i + 1)))
            line = proc.stdout.readline().decode("ascii", "replace").strip()
            if not line:
                raise RuntimeError("PySyncObj member %s exited before it was ready" % (me,))
            self.members.append((me, "http://127.0.0.1:%s" % (line,), proc))
        self.leaderURL, self.leaderProc = _waitFor(
            "PySyncObj leader", self._leader, 60, [p for _, _, p in self.members])
        self.leaderPort = int(self.leaderURL.rsplit(":", 1)[1])
        _waitFor("PySyncObj accepts writes",
                 lambda: _http("PUT", self.leaderURL + "/kv/bench-probe", b"x" * VALUE_SIZE)[0]
                 == 200, 60, [p for _, _, p in self.members])

    def _leader(self):
        statuses = {}
        for me, url, proc in self.members:
            status, body = _http("GET", url + "/status")
            if status != 200:
                return None
            statuses[me] = (json.loads(body), url, proc)
        leaders = {s["leader"] for s, _, _ in statuses.values()}
        if len(leaders) != 1 or None in leaders:
            return None
        leader = leaders.pop()
        s, url, proc = statuses.get(leader, (None, None, None))
        if s is None or not s["isLeader"] or not s["ready"]:
            return None
        return url, proc

    def inProcess(self, warmup, duration):
        query = "concurrency=%d&warmup=%g&duration=%g&size=%d&keyspace=%d" % (
            CONCURRENCY, warmup, duration, VALUE_SIZE, KEYSPACE)
        status, body = _http("POST", self.leaderURL + "/inprocess?" + query, b"",
                             timeout=warmup + duration + 60)
        if status != 200:
            raise RuntimeError("PySyncObj in-process load: %d %r" % (status, body[:200]))
        return json.loads(body)

    def syncs(self):
        return json.loads(_http("GET", self.leaderURL + "/status")[1])


# -- profiling -------------------------------------------------------------------------

@contextlib.contextmanager
def profiled(proc, name, duration):
    """
    py-spy record ``proc`` (anything with a ``pid``) for duration seconds if
    RAFTMUX_BENCH_PROFILE is set.
    """
    directory = os.environ.get("RAFTMUX_BENCH_PROFILE")
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not directory or not os.path.exists(spy):
        yield
        return
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, name + ".txt")
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(proc.pid), "--duration", str(int(duration)),
         "--rate", "250", "--format", "raw", "--nonblocking", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    except BaseException:
        recorder.kill()
        recorder.wait()
        raise
    try:
        recorder.wait(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()
    if os.path.exists(out):
        print(summarizeProfile(out, name), file=sys.stderr)


def summarizeProfile(path, name, top=15):
    """Top functions by own and by inclusive samples in py-spy's collapsed stacks."""
    own, inclusive, total = Counter(), Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = [_shortFrame(fr) for fr in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for fr in set(frames):
                inclusive[fr] += n
    lines = ["profile of %s: %d samples (%s)" % (name, total, path), "  own time:"]
    lines += ["    %5.1f%%  %s" % (100.0 * c / total, fr) for fr, c in own.most_common(top)]
    lines.append("  inclusive:")
    lines += ["    %5.1f%%  %s" % (100.0 * c / total, fr)
              for fr, c in inclusive.most_common(top + 10)]
    return "\n".join(lines)


def _shortFrame(frame):
    # "function (path/to/file.py:123)" -> "function (file.py:123)"; line numbers of
    # the same function are merged.
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    fileName = where.rsplit(":", 1)[0]
    parts = fileName.split("/")
    for marker in ("site-packages", "raftmux", "lib"):
        if marker in parts:
            parts = parts[len(parts) - parts[::-1].index(marker) - 1:]
            break
    return "%s (%s)" % (func, "/".join(parts[-3:]))


# -- the benchmark -------------------------------------------------------------------------

def _med(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return median(values) if values else None


def measureRaftmux(root, repeats, warmup, duration):
    return onReactor(lambda reactor: _measureRaftmux(reactor, root, repeats, warmup, duration))


# PySyncObj configurations measured: (label, durable, arguments, description).
# appendEntriesUseBatch=False sends AppendEntries at once for each command
# (PySyncObj's low-latency setting); its default (batches every
# appendEntriesPeriod = 0.1 s) gives ~600 writes/s with 64 writers, so the
# batching configuration measured has a 2 ms period instead.
CONFIGS = [
    ("fsync", True, [], "appendEntriesUseBatch=False"),
    ("fsync-batch", True, ["--batch", "--append-period", "0.002"],
     "appendEntriesUseBatch=True, appendEntriesPeriod=2 ms"),
    ("stock", False, [], "appendEntriesUseBatch=False"),
]


def measurePySyncObj(root, label, fsync, extraArgs, repeats, warmup, duration, reads,
                     profile=False):
    with Processes() as procs:
        cluster = PySyncObjCluster(procs, root, fsync, label, extraArgs)
        cluster.start()
        port = cluster.leaderPort
        writes = []
        for i in range(repeats):
            if i == 0 and profile:
                with profiled(cluster.leaderProc, "pysyncobj-leader", warmup + duration):
                    writes.append(load("put", port, warmup, duration))
            else:
                writes.append(load("put", port, warmup, duration))
        serial = [load("get", port, warmup, duration) for _ in range(repeats)] if reads else []
        inproc = [cluster.inProcess(warmup, duration) for _ in range(repeats)]
        status = cluster.syncs()
    return {"writes": writes, "serial": serial, "inproc": inproc, "status": status}


def run(options):
    # SIGTERM unwinds like Ctrl-C, so every member and the data are removed.
    return unwindOnTerminate("node", _run, options)


def _run(options):
    repeats = 1 if options.quick else 3
    warmup, duration = (0.5, 2.0) if options.quick else (1.0, 5.0)
    root = dataRoot()
    where = "data in %s (%s)" % (os.path.dirname(root), fileSystemOf(root))
    pso = {}
    try:
        writes, reads, serial = measureRaftmux(root, repeats, warmup, duration)
        baseline = havePySyncObj()
        if baseline:
            for label, fsync, extraArgs, _ in CONFIGS:
                pso[label] = measurePySyncObj(root, label, fsync, extraArgs, repeats, warmup,
                                              duration, reads=label == "fsync",
                                              profile=label == "fsync")
        else:
            print("node bench: PySyncObj is not installed (pip install pysyncobj): "
                  "no baseline, raftmux figures only", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    how = "%d members, %d conns x 1 outstanding, %d B, %gs x %d, %s" % (
        MEMBERS, CONCURRENCY, VALUE_SIZE, duration, repeats, where)
    w = _med(writes, "perSecond")
    p50, p99 = _med(writes, "p50"), _med(writes, "p99")
    r, rs = _med(reads, "perSecond"), _med(serial, "perSecond")
    extra = {"raftmux": {"writes": writes, "reads": reads, "serial": serial},
             "setup": how}
    if not baseline:
        return [
            Result("write", "writes/s", w, None, target=1.0,
                   notes="HTTP PUT to the leader, fsync; no baseline (no PySyncObj); " + how,
                   extra=extra),
            Result("write-p50", "ms", p50, None, higherIsBetter=False),
            Result("write-p99", "ms", p99, None, higherIsBetter=False),
            Result("read", "reads/s", r, None, notes="linearizable (ReadIndex)"),
            Result("read-serializable", "reads/s", rs, None, notes="?serializable=true"),
        ]
    extra["pysyncobj"] = pso
    configs = {label: description for label, _, _, description in CONFIGS}
    httpBest = max(("fsync", "fsync-batch"), key=lambda k: _med(pso[k]["writes"], "perSecond"))
    inBest = max(("fsync", "fsync-batch"), key=lambda k: _med(pso[k]["inproc"], "perSecond"))
    best = pso[httpBest]
    others = ", ".join("%s %.0f/s" % (configs[k], _med(pso[k]["writes"], "perSecond"))
                       for k in ("fsync", "fsync-batch"))
    syncs = best["status"].get("syncs")
    extra["baselines"] = {
        "write": "PySyncObj %s, journal synced before each send (other: %s)" % (
            configs[httpBest], others),
        "stock": "PySyncObj %s, no sync" % (configs["stock"],),
        "in-process": "PySyncObj %s, journal synced, load inside the leader" % (
            configs[inBest],),
        "pysyncobjLeaderSyncs": syncs,
    }
    short = {"fsync": "no batching", "fsync-batch": "batch 2 ms", "stock": "no batching"}
    stock, inproc = pso["stock"], pso[inBest]
    return [
        Result("write", "writes/s", w, _med(best["writes"], "perSecond"), target=1.0,
               notes="HTTP PUT to the leader; both fsync; PySyncObj (%s) behind the same "
                     "HTTP server and client; %s" % (short[httpBest], how), extra=extra),
        Result("write-p50", "ms", p50, _med(best["writes"], "p50"), higherIsBetter=False,
               notes="latency of those writes, seen by the client"),
        Result("write-p99", "ms", p99, _med(best["writes"], "p99"), higherIsBetter=False,
               notes="latency of those writes, seen by the client"),
        Result("write (vs pysyncobj stock, no fsync)", "writes/s", w,
               _med(stock["writes"], "perSecond"),
               notes="unmodified PySyncObj (%s, never syncs), same HTTP; p50 %.1f ms" % (
                   short["stock"], _med(stock["writes"], "p50"))),
        Result("write (vs pysyncobj in-process)", "writes/s", w,
               _med(inproc["inproc"], "perSecond"),
               notes="PySyncObj (%s, fsync) with the 64 writers inside the leader, no HTTP; "
                     "p50 %.1f ms; stock in-process %.0f/s" % (
                         short[inBest], _med(inproc["inproc"], "p50"),
                         _med(stock["inproc"], "perSecond"))),
        Result("read", "reads/s", r, None,
               notes="linearizable (ReadIndex) on the leader; p50 %.1f ms; PySyncObj has none"
                     % (_med(reads, "p50"),)),
        Result("read-serializable", "reads/s", rs, _med(pso["fsync"]["serial"], "perSecond"),
               notes="?serializable=true; PySyncObj: local ReplDict.get, same HTTP"),
    ]
