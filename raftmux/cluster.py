# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
A local raftmux cluster: N ``twistd -n raftmux`` processes on loopback,
each with its own data directory, run in the foreground.

    python -m raftmux.cluster [options] [run]       # start, print URLs, wait for health
    python -m raftmux.cluster status                # from another terminal
    python -m raftmux.cluster kill leader           # kill -9 the leader (or a name)
    python -m raftmux.cluster start n2              # start a stopped member again
    python -m raftmux.cluster restart n2            # kill -9, then start
    python -m raftmux.cluster add n4                # add a member (POST /cluster/members)
    python -m raftmux.cluster remove n4             # remove it (DELETE /cluster/members/<id>)
    python -m raftmux.cluster stop                  # stop the cluster (as Ctrl-C does)

Flags after ``--`` go to every member (``-- --snapshot-count 50``).  See
``docs/cluster.md``.

The process management is ``LocalCluster``, a small reusable class on a
Twisted reactor (the tests use it too).  Child processes never outlive the
cluster: a normal stop (Ctrl-C, SIGTERM, ``stopAll()``) sends SIGTERM to
every member and SIGKILL to one that does not exit in time, and reaps
them; in case the parent itself is killed (kill -9, a test runner killed
on a timeout), a tiny guardian process holds a pipe from the parent and
SIGKILLs the members it was told about once that pipe reaches EOF (no
``prctl``).  The members stay in the parent's process group, so a
terminal's Ctrl-C reaches them too and ``kill -- -<pid>`` stops the lot.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from twisted.internet import defer, protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss

import raftmux

__all__ = ["ClusterError", "LocalCluster", "Member", "childEnvironment", "freePort",
           "planMembers", "twistdCommand", "main"]

log = Logger()

ETCD = "/usr/bin/etcd"
DEFAULT_DIR = "raftmux-cluster"
DEFAULT_TOKEN = "raftmux-cluster"
DEFAULT_BASE_PORT = 12379
DEFAULT_PORT_STEP = 10000
STATE_FILE = "cluster.json"

_TWISTD_INLINE = ("import sys; from twisted.scripts.twistd import run; "
                  "sys.argv[0] = 'twistd'; sys.exit(run())")

# The guardian: reads "+pid" / "-pid" lines from its stdin (a pipe from the
# cluster's process) and SIGKILLs the pids still listed when the pipe ends,
# which happens when the parent exits, however it exits.
_GUARDIAN = """\
# raftmux.cluster guardian: kills the members when its parent is gone
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
pids = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        pids.add(int(line[1:]))
    elif line[:1] == "-":
        pids.discard(int(line[1:]))
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


class ClusterError(Exception):
    """The cluster cannot do what was asked (the message says why)."""


def freePort(host="127.0.0.1"):
    """
    A TCP port the kernel just gave out and that nobody listens on: bind,
    read, release.  A child process must know its URLs before it starts,
    so it cannot bind port 0 itself; another process may take the port in
    between, which on loopback in a test run is rare enough.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def twistdCommand():
    """The argv prefix that runs ``twistd`` with this interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [sys.executable, script]
    found = shutil.which("twistd")
    if found:
        return [found]
    return [sys.executable, "-c", _TWISTD_INLINE]


def childEnvironment():
    """The environment of every member: ours, with this raftmux importable."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(raftmux.__file__)))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([root] + paths)
    return env


class Member:
    """
    One member's plan (name, URLs, kind: ``"raftmux"`` or ``"etcd"``) and
    its current process.  ``exits`` lists how each of its processes ended
    (``("exit", code)`` or ``("signal", number)``).
    """

    def __init__(self, name, clientURL, peerURL, kind="raftmux", initialCluster=None,
                 state=None):
        self.name = name
        self.clientURL = clientURL
        self.peerURL = peerURL
        self.kind = kind
        self.initialCluster = initialCluster
        self.state = state
        self.dataDir = None
        self.logPath = None
        self.process = None
        self.id = None
        self.exits = []
        self.lastPid = None
        self.starts = 0
        self._logStart = 0
        self._waiters = []

    @property
    def running(self):
        return self.process is not None

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    def output(self, sinceStart=True):
        """What the member's processes wrote (since the latest start by default)."""
        if self.logPath is None or not os.path.exists(self.logPath):
            return ""
        with open(self.logPath, "rb") as f:
            if sinceStart:
                f.seek(self._logStart)
            return f.read().decode("utf-8", "replace")

    def tail(self, lines=15):
        return "\n".join(self.output(sinceStart=False).splitlines()[-lines:])

    def whenEnded(self):
        """A Deferred that fires with the exit once the current process ends."""
        if self.process is None:
            return defer.succeed(self.exits[-1] if self.exits else None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def asJSON(self):
        return {"name": self.name, "clientURL": self.clientURL, "peerURL": self.peerURL,
                "kind": self.kind, "initialCluster": self.initialCluster,
                "state": self.state, "pid": self.pid, "exits": self.exits}

    @classmethod
    def fromJSON(cls, value):
        return cls(value["name"], value["clientURL"], value["peerURL"],
                   value.get("kind", "raftmux"), value.get("initialCluster"),
                   value.get("state"))

    def __repr__(self):
        return "<Member %s %s pid=%s>" % (self.name, self.clientURL, self.pid)


def planMembers(size=3, ports=DEFAULT_BASE_PORT, onePort=False, step=DEFAULT_PORT_STEP,
                names=None, etcd=(), host="127.0.0.1"):
    """
    The members of a new cluster.  ``ports``: a base port (member i, from
    0, gets client port ``base + i*step`` and peer port one above it, as
    the Procfile does) or ``"auto"`` (ports the kernel picks).
    ``onePort``: a raftmux member serves its clients and peers on one port
    (an etcd member, named in ``etcd``, always needs two).
    """
    names = list(names or ["n%d" % (i + 1,) for i in range(size)])
    members = []
    for i, name in enumerate(names):
        kind = "etcd" if name in etcd else "raftmux"
        single = onePort and kind == "raftmux"
        if ports == "auto":
            client = freePort(host)
            peer = client if single else freePort(host)
        else:
            client = int(ports) + i * step
            peer = client if single else client + 1
            if peer > 65535:
                raise ClusterError("member %s would need port %d: use a smaller --base-port, "
                                   "--port-step or --ports auto" % (name, peer))
        members.append(Member(name, "http://%s:%d" % (host, client),
                              "http://%s:%d" % (host, peer), kind))
    return members


class _MemberProcess(protocol.ProcessProtocol):
    """Copies a member's output into its log file (and to ``echo``)."""

    def __init__(self, cluster, member, logFile):
        self.cluster = cluster
        self.member = member
        self.logFile = logFile
        self._partial = b""

    def outReceived(self, data):
        self.logFile.write(data)
        self.logFile.flush()
        if self.cluster.echo is not None:
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                self.cluster.echo(self.member.name, line.decode("utf-8", "replace"))

    errReceived = outReceived

    def processEnded(self, reason):
        self.logFile.close()
        member = self.member
        pid = member.lastPid
        value = reason.value
        if getattr(value, "signal", None) is not None:
            exit = ("signal", value.signal)
        else:
            exit = ("exit", getattr(value, "exitCode", 0) or 0)
        member.exits.append(exit)
        member.process = None
        self.cluster._ended(member, pid, exit)
        waiters, member._waiters = member._waiters, []
        for d in waiters:
            d.callback(exit)


class _Guardian(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()

    def processEnded(self, reason):
        self.ended.callback(None)


class LocalCluster:
    """
    Member processes on this machine, started and stopped on a Twisted
    reactor.  ``directory`` holds one data directory and one log file per
    member (``<name>/``, ``<name>.log``).

    ``flags``: extra command-line flags for every raftmux member;
    ``etcdFlags``: for every etcd member.  ``echo(name, line)``: called
    with each line a member writes.  ``guardian``: run the guardian
    process that kills the members if this process dies.
    """

    def __init__(self, directory, members, token=DEFAULT_TOKEN, flags=(), etcdFlags=(),
                 reactor=None, echo=None, guardian=True, etcd=ETCD, onExit=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.directory = os.path.abspath(directory)
        self.members = {}
        for member in members:
            self._adopt(member)
        self.token = token
        self.flags = list(flags)
        self.etcdFlags = list(etcdFlags)
        self.echo = echo
        self.etcd = etcd
        self.onExit = onExit
        self.useGuardian = guardian
        self._guardian = None
        self._guardianProtocol = None
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self._agent = Agent(reactor, pool=self._pool)
        self._stopping = False

    @classmethod
    def create(cls, directory, size=3, ports="auto", onePort=True, etcd=(), names=None,
               **kwargs):
        """A new cluster's plan (``planMembers``) as a ``LocalCluster``."""
        return cls(directory, planMembers(size, ports, onePort, names=names, etcd=etcd),
                   **kwargs)

    def _adopt(self, member):
        member.dataDir = os.path.join(self.directory, member.name)
        member.logPath = os.path.join(self.directory, member.name + ".log")
        self.members[member.name] = member

    # -- what the cluster looks like ------------------------------------------------

    @property
    def urls(self):
        """``{name: client URL}`` of every member."""
        return {name: m.clientURL for name, m in self.members.items()}

    @property
    def initialCluster(self):
        return ",".join("%s=%s" % (m.name, m.peerURL) for m in self.members.values()
                        if m.initialCluster is None)

    def member(self, name):
        try:
            return self.members[name]
        except KeyError:
            raise ClusterError("no member named %r (members: %s)" % (
                name, ", ".join(self.members))) from None

    def running(self):
        return [m for m in self.members.values() if m.running]

    def command(self, name):
        """The argv that runs member ``name``."""
        m = self.member(name)
        flags = [
            "--name", m.name, "--data-dir", m.dataDir,
            "--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
            "--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
            "--initial-cluster", m.initialCluster or self.initialCluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", m.state or "new",
        ]
        if m.kind == "etcd":
            return [self.etcd] + flags + self.etcdFlags
        return twistdCommand() + ["-n", "--pidfile=", "raftmux"] + flags + self.flags

    # -- processes -------------------------------------------------------------------

    def _startGuardian(self):
        if self._guardian is not None or not self.useGuardian:
            return
        self._guardianProtocol = _Guardian()
        self._guardian = self.reactor.spawnProcess(
            self._guardianProtocol, sys.executable, [sys.executable, "-c", _GUARDIAN],
            env=dict(os.environ), childFDs={0: "w", 1: "r", 2: "r"})

    def _tellGuardian(self, line):
        if self._guardian is not None:
            try:
                self._guardian.write(line.encode("ascii") + b"\n")
            except Exception:  # the guardian died: nothing to tell
                pass

    def start(self, name=None):
        """
        Start member ``name`` (every member not running when None).  Its
        output is appended to ``<name>.log``.  Returns the ``Member``.
        """
        if name is None:
            for n in self.members:
                if not self.members[n].running:
                    self.start(n)
            return None
        m = self.member(name)
        if m.running:
            raise ClusterError("%s is running (pid %d)" % (name, m.pid))
        if m.kind == "etcd" and not os.path.exists(self.etcd):
            raise ClusterError("%s is an etcd member but %s is not installed" % (name, self.etcd))
        if self._stopping:
            raise ClusterError("the cluster is stopping")
        os.makedirs(self.directory, exist_ok=True)
        self._startGuardian()
        logFile = open(m.logPath, "ab")
        m._logStart = logFile.tell()
        argv = self.command(name)
        m.process = self.reactor.spawnProcess(
            _MemberProcess(self, m, logFile), argv[0], argv, env=childEnvironment(),
            path=self.directory, childFDs={0: "w", 1: "r", 2: "r"})
        m.starts += 1
        m.lastPid = m.pid
        self._tellGuardian("+%d" % (m.pid,))
        log.info("raftmux.cluster: started {name} (pid {pid})", name=name, pid=m.pid)
        return m

    def _ended(self, member, pid, exit):
        if pid is not None:
            self._tellGuardian("-%d" % (pid,))
        if self.onExit is not None:
            self.onExit(member, pid, exit)

    def kill(self, name, sig=signal.SIGKILL):
        """
        Send ``sig`` to member ``name`` (SIGKILL by default, kill -9); the
        Deferred fires with its exit once it has ended and been reaped.
        """
        m = self.member(name)
        if not m.running:
            return defer.succeed(m.exits[-1] if m.exits else None)
        d = m.whenEnded()
        try:
            m.process.signalProcess(sig)
        except Exception:  # ended between the check and the signal
            pass
        return d

    @defer.inlineCallbacks
    def stop(self, name, timeout=10.0):
        """SIGTERM, then SIGKILL after ``timeout`` seconds; fires once it ended."""
        m = self.member(name)
        if not m.running:
            return m.exits[-1] if m.exits else None
        ended = m.whenEnded()
        try:
            m.process.signalProcess(signal.SIGTERM)
        except Exception:
            pass
        timer = self.reactor.callLater(timeout, self._forceKill, m)
        exit = yield ended
        if timer.active():
            timer.cancel()
        return exit

    def _forceKill(self, member):
        if member.running:
            log.warn("raftmux.cluster: {name} did not stop in time: SIGKILL", name=member.name)
            try:
                member.process.signalProcess(signal.SIGKILL)
            except Exception:
                pass

    @defer.inlineCallbacks
    def restart(self, name, sig=signal.SIGKILL):
        """Kill member ``name`` with ``sig`` (kill -9 by default) and start it again."""
        yield self.kill(name, sig)
        return self.start(name)

    @defer.inlineCallbacks
    def stopAll(self, timeout=10.0):
        """
        Stop every member (SIGTERM, SIGKILL after ``timeout``), reap them,
        then let the guardian go.  Safe to call more than once.
        """
        self._stopping = True
        # etcd members first: an etcd stopped while its peers are gone waits
        # seconds for a leadership transfer; with them up it stops at once.
        for kinds in (("etcd",), ("raftmux",)):
            yield defer.DeferredList([self.stop(n, timeout) for n, m in list(self.members.items())
                                      if m.kind in kinds], consumeErrors=True)
        if self._guardian is not None:
            guardian, self._guardian = self._guardian, None
            try:
                guardian.closeStdin()
            except Exception:
                pass
            yield self._guardianProtocol.ended
        yield self._pool.closeCachedConnections()
        self._stopping = False

    # -- HTTP ----------------------------------------------------------------------

    def request(self, name, method, path, body=None, timeout=10.0):
        """
        ``method path`` on member ``name``'s client URL; fires with
        ``(code, body, headers)`` or fails (connection refused, timeout).
        """
        url = (self.member(name).clientURL + path).encode("ascii")
        if isinstance(method, str):
            method = method.encode("ascii")
        if isinstance(body, str):
            body = body.encode("utf-8")

        async def go():
            producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
            response = await self._agent.request(method, url, None, producer)
            data = await _readBody(response)
            return response.code, data, response.headers
        d = defer.ensureDeferred(go())
        d.addTimeout(timeout, self.reactor)
        return d

    @defer.inlineCallbacks
    def health(self, name, timeout=2.0):
        """True when member ``name`` answers ``/health`` with 200."""
        if not self.member(name).running:
            return False
        try:
            code, _, _ = yield self.request(name, "GET", "/health", timeout=timeout)
        except Exception:
            return False
        return code == 200

    @defer.inlineCallbacks
    def leader(self, timeout=2.0):
        """
        The name of the leader every running raftmux member agrees on, or
        None (no leader, a disagreement, or a leader that is not running).
        """
        leaders = set()
        byURL = {m.peerURL: m.name for m in self.members.values()}
        names = {}
        asked = [m for m in self.running() if m.kind == "raftmux"]
        if not asked:
            return None
        results = yield defer.DeferredList(
            [self.request(m.name, "GET", "/cluster/members", timeout=timeout) for m in asked],
            consumeErrors=True)
        for ok, result in results:
            if not ok or result[0] != 200:
                return None
            listing = json.loads(result[1])
            leaders.add(listing.get("leader"))
            for entry in listing.get("members", ()):
                for url in entry.get("peerURLs", ()):
                    if url in byURL:
                        names[entry["id"]] = byURL[url]
        if len(leaders) != 1:
            return None
        (lead,) = leaders
        name = names.get(lead)
        if name is None or not self.members[name].running:
            return None
        return name

    async def waitHealthy(self, names=None, timeout=30.0, interval=0.1):
        """
        Poll ``/health`` until every named (by default every running)
        member answers 200; a member that exits meanwhile, or the time
        running out, raises ``ClusterError`` with the tail of its log.
        """
        names = list(names) if names is not None else [m.name for m in self.running()]
        deadline = self.reactor.seconds() + timeout
        while True:
            for name in names:
                if not self.member(name).running:
                    raise ClusterError("%s exited (%s) before it was healthy:\n%s" % (
                        name, _describeExit(self.member(name).exits[-1:]),
                        self.member(name).tail()))
            results = await defer.gatherResults([self.health(n) for n in names])
            if all(results):
                return
            if self.reactor.seconds() > deadline:
                sick = [n for n, ok in zip(names, results, strict=True) if not ok]
                raise ClusterError("not healthy after %.0f s: %s\n%s" % (
                    timeout, ", ".join(sick),
                    "\n".join("--- %s.log\n%s" % (n, self.member(n).tail()) for n in sick)))
            await deferLater(self.reactor, interval, lambda: None)

    async def waitLeader(self, timeout=30.0, interval=0.1):
        """Poll until the running members agree on a running leader; its name."""
        deadline = self.reactor.seconds() + timeout
        while True:
            name = await self.leader()
            if name is not None:
                return name
            if self.reactor.seconds() > deadline:
                raise ClusterError("no leader after %.0f s" % (timeout,))
            await deferLater(self.reactor, interval, lambda: None)

    # -- membership ----------------------------------------------------------------

    async def add(self, name, clientURL=None, peerURL=None, via=None):
        """
        Add a raftmux member: ``POST /cluster/members`` on a running member,
        then start it with ``--initial-cluster-state existing`` and the
        ``initialCluster`` the POST returned.  Returns the ``Member``.
        """
        if name in self.members:
            raise ClusterError("a member named %r exists" % (name,))
        if clientURL is None:
            clientURL = "http://127.0.0.1:%d" % (freePort(),)
        peerURL = peerURL or clientURL
        via = via or await self._anyHealthy()
        code, body, _ = await self.request(via, "POST", "/cluster/members", json.dumps(
            {"peerURLs": [peerURL], "name": name}))
        if code != 201:
            raise ClusterError("POST /cluster/members on %s: %d %s" % (
                via, code, body.decode("utf-8", "replace").strip()))
        answer = json.loads(body)
        member = Member(name, clientURL, peerURL, initialCluster=answer["initialCluster"],
                        state="existing")
        member.id = answer["changed"]
        self._adopt(member)
        self.start(name)
        return member

    async def remove(self, name, via=None):
        """``DELETE /cluster/members/<id>`` of member ``name``, then stop its process."""
        m = self.member(name)
        via = via or await self._anyHealthy(exclude=name)
        code, body, _ = await self.request(via, "GET", "/cluster/members")
        ids = [e["id"] for e in json.loads(body)["members"] if m.peerURL in e["peerURLs"]]
        if not ids:
            raise ClusterError("%s is not a member of the cluster" % (name,))
        code, body, _ = await self.request(via, "DELETE", "/cluster/members/" + ids[0])
        if code != 200:
            raise ClusterError("DELETE /cluster/members/%s on %s: %d %s" % (
                ids[0], via, code, body.decode("utf-8", "replace").strip()))
        await self.stop(name)
        del self.members[name]
        return ids[0]

    async def _anyHealthy(self, exclude=None):
        for m in self.running():
            if m.name != exclude and m.kind == "raftmux" and await self.health(m.name):
                return m.name
        raise ClusterError("no healthy raftmux member to ask")

    # -- persistence (the CLI's cluster.json) ------------------------------------------

    def save(self, extra=None):
        state = {"pid": os.getpid(), "token": self.token, "flags": self.flags,
                 "etcdFlags": self.etcdFlags,
                 "members": [m.asJSON() for m in self.members.values()]}
        state.update(extra or {})
        path = os.path.join(self.directory, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f, indent=2)
        os.replace(path + ".tmp", path)


class _Body(protocol.Protocol):
    """
    Collects a response body (``readBody`` without its warning about
    transports that lack ``abortConnection``).
    """

    def __init__(self, finished):
        self.finished = finished
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def _readBody(response):
    body = None

    def cancel(d):
        transport = getattr(body, "transport", None)
        if transport is not None:
            transport.stopProducing()
    finished = defer.Deferred(cancel)
    body = _Body(finished)
    response.deliverBody(body)
    return finished


def _describeExit(exits):
    if not exits:
        return "never started"
    kind, value = exits[-1]
    if kind == "signal":
        try:
            return "killed by %s" % (signal.Signals(value).name,)
        except ValueError:
            return "killed by signal %d" % (value,)
    return "exit status %d" % (value,)


# -- the command line ---------------------------------------------------------------

def _socketPath(directory):
    """DIR/control.sock, or a short path in /tmp when that is too long for AF_UNIX."""
    path = os.path.join(os.path.abspath(directory), "control.sock")
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "raftmux-cluster-%s.sock" % (digest,))


class _Control(LineOnlyReceiver):
    """One JSON request per line on the control socket, one JSON answer per line."""

    delimiter = b"\n"

    def lineReceived(self, line):
        d = defer.maybeDeferred(lambda: defer.ensureDeferred(
            self.factory.supervisor.handle(json.loads(line))))
        d.addErrback(lambda f: {"ok": False, "error": f.getErrorMessage()})
        d.addCallback(lambda answer: self.sendLine(json.dumps(answer).encode()))


class _Supervisor:
    """``run``: the cluster in the foreground, and the control socket."""

    def __init__(self, args, cluster, out):
        self.args = args
        self.cluster = cluster
        self.out = out
        self.healthy = False
        self.exitCode = 0
        self.port = None

    def say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def memberExited(self, member, pid, exit):
        if not self.cluster._stopping:
            self.say("raftmux cluster: %s (pid %s) exited: %s" % (
                member.name, pid, _describeExit([exit])))
        self.cluster.save({"socket": _socketPath(self.cluster.directory)})

    async def run(self):
        cluster = self.cluster
        args = self.args
        began = time.monotonic()
        socketPath = _socketPath(cluster.directory)
        from twisted.internet.endpoints import UNIXServerEndpoint
        factory = protocol.Factory.forProtocol(_Control)
        factory.supervisor = self
        factory.noisy = False
        if os.path.exists(socketPath):
            os.unlink(socketPath)
        self.port = await UNIXServerEndpoint(cluster.reactor, socketPath).listen(factory)
        cluster.start()
        cluster.save({"socket": socketPath})
        self.say("raftmux cluster: %d members, data and logs in %s" % (
            len(cluster.members), cluster.directory))
        for m in cluster.members.values():
            shared = " (clients and peers)" if m.clientURL == m.peerURL else \
                "  peer %s" % (m.peerURL,)
            self.say("  %-4s pid %-7d %s%s%s" % (m.name, m.pid, m.clientURL, shared,
                                                   "  [etcd]" if m.kind == "etcd" else ""))
        try:
            await cluster.waitHealthy(timeout=args.timeout)
        except ClusterError as e:
            if cluster._stopping:  # Ctrl-C while starting
                return
            self.say("raftmux cluster: %s" % (e,))
            self.exitCode = 1
            _stopReactor(cluster.reactor)
            return
        self.healthy = True
        leader = await cluster.leader()
        self.say("raftmux cluster: healthy after %.1f s%s" % (
            time.monotonic() - began, "; leader %s" % (leader,) if leader else ""))
        ours = [m for m in cluster.members.values() if m.kind == "raftmux"]
        etcds = [m for m in cluster.members.values() if m.kind == "etcd"]
        if etcds:
            self.say("try: ETCDCTL_API=3 etcdctl --endpoints %s put greeting hello"
                     % (etcds[0].clientURL,))
        elif ours:
            self.say("try: curl -XPUT --data-binary hello %s/kv/greeting" % (ours[0].clientURL,))
        command = "python -m raftmux.cluster" + (
            "" if args.dir == DEFAULT_DIR else " --dir %s" % (args.dir,))
        self.say("     %s status | kill leader | start NAME" % (command,))
        self.say("Ctrl-C (or %s stop) stops every member." % (command,))

    async def shutdown(self):
        running = [m.name for m in self.cluster.running()]
        if running:
            self.say("raftmux cluster: stopping %s" % (", ".join(running),))
        await self.cluster.stopAll()
        if self.port is not None:
            await self.port.stopListening()
        for path in (_socketPath(self.cluster.directory),):
            if os.path.exists(path):
                os.unlink(path)
        self.cluster.save({"pid": None})
        self.say("raftmux cluster: stopped")

    async def handle(self, request):
        cluster = self.cluster
        cmd = request.get("cmd")
        name = request.get("name")
        if name == "leader":
            name = await cluster.leader()
            if name is None:
                return {"ok": False, "error": "no leader right now"}
        if cmd == "status":
            return {"ok": True, "members": await self.status(),
                    "leader": await cluster.leader()}
        if cmd == "kill":
            sig = request.get("signal") or signal.SIGKILL
            exit = await cluster.kill(name, sig)
            return {"ok": True, "name": name, "exit": _describeExit([exit]) if exit else None}
        if cmd == "start":
            m = cluster.start(name)
            cluster.save({"socket": _socketPath(cluster.directory)})
            await cluster.waitHealthy([name], timeout=self.args.timeout)
            return {"ok": True, "name": name, "pid": m.pid}
        if cmd == "restart":
            m = await cluster.restart(name)
            cluster.save({"socket": _socketPath(cluster.directory)})
            await cluster.waitHealthy([name], timeout=self.args.timeout)
            return {"ok": True, "name": name, "pid": m.pid}
        if cmd == "add":
            m = await cluster.add(name)
            cluster.save({"socket": _socketPath(cluster.directory)})
            await cluster.waitHealthy([name], timeout=self.args.timeout)
            return {"ok": True, "name": name, "pid": m.pid, "id": m.id,
                    "clientURL": m.clientURL}
        if cmd == "remove":
            id = await cluster.remove(name)
            cluster.save({"socket": _socketPath(cluster.directory)})
            return {"ok": True, "name": name, "id": id}
        if cmd == "stop":
            cluster.reactor.callLater(0, _stopReactor, cluster.reactor)
            return {"ok": True}
        return {"ok": False, "error": "unknown command %r" % (cmd,)}

    async def status(self):
        rows = []
        members = list(self.cluster.members.values())
        health = await defer.gatherResults([self.cluster.health(m.name) for m in members])
        for m, healthy in zip(members, health, strict=True):
            rows.append({"name": m.name, "pid": m.pid, "kind": m.kind,
                         "state": "running" if m.running else
                         "stopped (%s)" % (_describeExit(m.exits),),
                         "healthy": healthy, "clientURL": m.clientURL, "peerURL": m.peerURL})
        return rows


def _ask(directory, request, timeout=60.0):
    """Send one request to the supervisor of the cluster in ``directory``."""
    path = _socketPath(directory)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        raise ClusterError("no cluster is running in %s (start one with "
                           "python -m raftmux.cluster --dir %s)" % (directory, directory)) \
            from None
    with s:
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ClusterError("the cluster's supervisor closed the connection")
    answer = json.loads(data)
    if not answer.get("ok"):
        raise ClusterError(answer.get("error", "failed"))
    return answer


def _formatStatus(answer):
    rows = [("NAME", "PID", "STATE", "HEALTHY", "LEADER", "CLIENT URL", "PEER URL")]
    for m in answer["members"]:
        rows.append((m["name"] + (" (etcd)" if m["kind"] == "etcd" else ""),
                     str(m["pid"] or "-"), m["state"], "yes" if m["healthy"] else "no",
                     "*" if m["name"] == answer.get("leader") else "",
                     m["clientURL"], "same" if m["peerURL"] == m["clientURL"] else m["peerURL"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


COMMANDS = ("run", "start", "stop", "status", "kill", "restart", "add", "remove", "leader")


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m raftmux.cluster",
        description="Run a local raftmux cluster (twistd -n raftmux processes) in the "
                    "foreground, or control the one running in --dir.",
        epilog="Flags after -- go to every raftmux member, e.g. "
               "-- --snapshot-count 50 --heartbeat-interval 50 --election-timeout 500. "
               "See docs/cluster.md.")
    p.add_argument("command", nargs="?", default="run", choices=COMMANDS,
                   help="run (default; 'start' with no NAME too): start the cluster in the "
                        "foreground; status; kill NAME|leader; start NAME; restart NAME; "
                        "add NAME; remove NAME; leader; stop")
    p.add_argument("name", nargs="?", help="a member's name, or 'leader'")
    p.add_argument("--size", type=int, default=3, help="members of a new cluster (3)")
    p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                   help="member i's client port is BASE+i*STEP, its peer port one more "
                        "(12379/12380, 22379/22380, 32379/32380, as the Procfile)")
    p.add_argument("--port-step", type=int, default=DEFAULT_PORT_STEP)
    p.add_argument("--ports", choices=("auto",), help="auto: ports the kernel picks")
    p.add_argument("--one-port", action="store_true",
                   help="each member serves clients and peers on one port")
    p.add_argument("--dir", default=DEFAULT_DIR,
                   help="data directories, logs and cluster.json (./%s)" % (DEFAULT_DIR,))
    p.add_argument("--token", default=DEFAULT_TOKEN, help="--initial-cluster-token")
    p.add_argument("--etcd", default="", metavar="NAMES",
                   help="comma-separated members to run as etcd (%s) instead" % (ETCD,))
    p.add_argument("--clean", action="store_true",
                   help="delete --dir first (a new cluster, not a restart)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the members to be healthy (30)")
    p.add_argument("--follow", action="store_true",
                   help="copy every member's log lines to stdout, prefixed with its name")
    p.add_argument("--signal", default="KILL", help="kill: the signal (KILL)")
    return p


def _signalNumber(text):
    text = text.upper()
    if text.isdigit():
        return int(text)
    try:
        return int(getattr(signal, text if text.startswith("SIG") else "SIG" + text))
    except AttributeError:
        raise ClusterError("unknown signal %r" % (text,)) from None


def _loadOrPlan(args, memberFlags):
    """The cluster in ``--dir``: the saved layout when there is one, else a new plan."""
    directory = os.path.abspath(args.dir)
    state = None
    path = os.path.join(directory, STATE_FILE)
    if args.clean and os.path.isdir(directory):
        shutil.rmtree(directory)
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    if state is not None:
        members = [Member.fromJSON(m) for m in state["members"]]
        return members, state.get("token", args.token), memberFlags or state.get("flags", []), \
            True
    etcd = [n for n in args.etcd.split(",") if n]
    members = planMembers(args.size, "auto" if args.ports == "auto" else args.base_port,
                          args.one_port, args.port_step, etcd=etcd)
    unknown = set(etcd) - {m.name for m in members}
    if unknown:
        raise ClusterError("--etcd names no member: %s" % (", ".join(sorted(unknown)),))
    return members, args.token, memberFlags, False


def _run(args, memberFlags, out):
    from twisted.internet import reactor

    try:
        _ask(args.dir, {"cmd": "status"}, timeout=5)
    except ClusterError:
        pass
    else:
        raise ClusterError("a cluster is already running in %s" % (args.dir,))
    members, token, flags, resumed = _loadOrPlan(args, memberFlags)
    os.makedirs(args.dir, exist_ok=True)

    def echo(name, line):
        out.write("%-4s | %s\n" % (name, line))
        out.flush()

    supervisor = None
    cluster = LocalCluster(args.dir, members, token=token, flags=flags,
                           echo=echo if args.follow else None,
                           onExit=lambda m, pid, e: supervisor.memberExited(m, pid, e))
    supervisor = _Supervisor(args, cluster, out)
    if resumed:
        supervisor.say("raftmux cluster: restarting the cluster saved in %s "
                       "(--clean for a new one)" % (cluster.directory,))

    def started():
        d = defer.ensureDeferred(supervisor.run())

        def failed(f):
            supervisor.say("raftmux cluster: %s" % (f.getErrorMessage(),))
            supervisor.exitCode = 1
            _stopReactor(reactor)
        d.addErrback(failed)

    # A shell starting us in the background leaves SIGINT ignored, and then
    # Twisted installs no handler for it; the members, spawned with default
    # dispositions, would stop on a Ctrl-C sent to the group while we stay.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: defer.ensureDeferred(supervisor.shutdown()))
    reactor.run()
    return supervisor.exitCode


def main(argv=None, out=None):
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    memberFlags = []
    if "--" in argv:
        cut = argv.index("--")
        argv, memberFlags = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    try:
        if args.command == "run" or (args.command == "start" and not args.name):
            return _run(args, memberFlags, out)
        if args.command == "status":
            out.write(_formatStatus(_ask(args.dir, {"cmd": "status"})) + "\n")
            return 0
        if args.command == "leader":
            answer = _ask(args.dir, {"cmd": "status"})
            if not answer.get("leader"):
                raise ClusterError("no leader right now")
            out.write(answer["leader"] + "\n")
            return 0
        if args.command == "stop":
            _ask(args.dir, {"cmd": "stop"})
            _waitGone(args.dir)
            out.write("stopped\n")
            return 0
        if not args.name:
            raise ClusterError("%s needs a member's name" % (args.command,))
        request = {"cmd": args.command, "name": args.name}
        if args.command == "kill":
            request["signal"] = _signalNumber(args.signal)
        answer = _ask(args.dir, request)
        if args.command == "kill":
            out.write("killed %s (%s)\n" % (answer["name"], answer["exit"]))
        elif args.command == "add":
            out.write("added %s (member %s) at %s, pid %d\n" % (
                answer["name"], answer["id"], answer["clientURL"], answer["pid"]))
        elif args.command == "remove":
            out.write("removed %s (member %s)\n" % (answer["name"], answer["id"]))
        else:
            out.write("%s %s (pid %d), healthy\n" % (
                {"start": "started", "restart": "restarted"}[args.command],
                answer["name"], answer["pid"]))
        return 0
    except ClusterError as e:
        sys.stderr.write("python -m raftmux.cluster: %s\n" % (e,))
        return 1


def _stopReactor(reactor):
    from twisted.internet.error import ReactorNotRunning
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def _waitGone(directory, timeout=30.0):
    """Until the supervisor of ``directory`` stops answering (bounded)."""
    path = _socketPath(directory)
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
