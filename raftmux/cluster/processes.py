# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
``LocalCluster``: member processes on this machine (``twistd -n raftmux``,
or ``etcd``), started, killed and reaped on a Twisted reactor, and asked
over HTTP whether they are healthy and who leads.

Child processes never outlive the cluster: a normal stop (Ctrl-C, SIGTERM,
``stopAll()``) sends SIGTERM to every member and SIGKILL to one that does
not exit in time, and reaps them; in case the parent itself is killed
(kill -9, a test runner killed on a timeout), a tiny guardian process holds
a pipe from the parent and SIGKILLs the members it was told about once that
pipe reaches EOF (no ``prctl``).  The members stay in the parent's process
group, so a terminal's Ctrl-C reaches them too and ``kill -- -<pid>`` stops
the lot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

import raftmux
from raftmux.cluster.client import ClusterHTTPClient
from raftmux.cluster.members import ClusterError, Member, describeExit, freePort, planMembers

__all__ = ["ETCD", "DEFAULT_TOKEN", "STATE_FILE", "LocalCluster", "childEnvironment",
           "twistdCommand"]

log = Logger()

ETCD = "/usr/bin/etcd"
DEFAULT_TOKEN = "raftmux-cluster"
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
        member.processEnded(exit)
        self.cluster.memberEnded(member, pid, exit)


class _Guardian(protocol.ProcessProtocol):
    def __init__(self):
        self.ended: defer.Deferred[Any] = defer.Deferred()

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
    ``onExit(member, pid, exit)``: called when a member's process ends.
    """

    def __init__(self, directory: str, members: Iterable[Member], token: str = DEFAULT_TOKEN,
                 flags: Sequence[str] = (), etcdFlags: Sequence[str] = (), reactor: Any = None,
                 echo: Callable[[str, str], object] | None = None, guardian: bool = True,
                 etcd: str = ETCD, onExit: Callable[..., object] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.directory = os.path.abspath(directory)
        self.members: dict[str, Member] = {}
        for member in members:
            self._adopt(member)
        self.token = token
        self.flags = list(flags)
        self.etcdFlags = list(etcdFlags)
        self.echo = echo
        self.etcd = etcd
        self.onExit = onExit
        self.useGuardian = guardian
        self.http = ClusterHTTPClient(reactor)
        self._guardian = None
        self._guardianProtocol: Any = None
        self._stopping = False

    @classmethod
    def create(cls, directory: str, size: int = 3, ports: int | str = "auto",
               onePort: bool = True, etcd: Iterable[str] = (),
               names: Sequence[str] | None = None, **kwargs: Any) -> LocalCluster:
        """A new cluster's plan (``planMembers``) as a ``LocalCluster``."""
        return cls(directory, planMembers(size, ports, onePort, names=names, etcd=etcd),
                   **kwargs)

    def _adopt(self, member):
        member.dataDir = os.path.join(self.directory, member.name)
        member.logPath = os.path.join(self.directory, member.name + ".log")
        self.members[member.name] = member

    # -- what the cluster looks like ------------------------------------------------

    @property
    def stopping(self):
        """Is ``stopAll`` under way?"""
        return self._stopping

    @property
    def urls(self) -> dict[str, str]:
        """``{name: client URL}`` of every member."""
        return {name: m.clientURL for name, m in self.members.items()}

    @property
    def initialCluster(self):
        return ",".join("%s=%s" % (m.name, m.peerURL) for m in self.members.values()
                        if m.initialCluster is None)

    def member(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            raise ClusterError("no member named %r (members: %s)" % (
                name, ", ".join(self.members))) from None

    def running(self) -> list[Member]:
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

    def start(self, name: str | None = None) -> Member | None:
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
        m.logStart = logFile.tell()
        argv = self.command(name)
        m.process = self.reactor.spawnProcess(
            _MemberProcess(self, m, logFile), argv[0], argv, env=childEnvironment(),
            path=self.directory, childFDs={0: "w", 1: "r", 2: "r"})
        m.starts += 1
        m.lastPid = m.pid
        self._tellGuardian("+%d" % (m.pid,))
        log.info("raftmux.cluster: started {name} (pid {pid})", name=name, pid=m.pid)
        return m

    def memberEnded(self, member, pid, exit):
        """A member's process (``pid``) ended: the guardian forgets it."""
        if pid is not None:
            self._tellGuardian("-%d" % (pid,))
        if self.onExit is not None:
            self.onExit(member, pid, exit)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> Deferred[Any]:
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
        yield self.http.close()
        self._stopping = False

    # -- HTTP ----------------------------------------------------------------------

    def request(self, name: str, method: str, path: str, body: str | bytes | None = None,
                timeout: float = 10.0) -> Deferred[tuple[int, bytes, Any]]:
        """
        ``method path`` on member ``name``'s client URL; fires with
        ``(code, body, headers)`` or fails (connection refused, timeout).
        """
        return self.http.request(self.member(name).clientURL + path, method, body, timeout)

    @defer.inlineCallbacks
    def health(self, name: str, timeout: float = 2.0) -> Generator[Any, Any, bool]:
        """True when member ``name`` answers ``/health`` with 200."""
        if not self.member(name).running:
            return False
        try:
            code, _, _ = yield self.request(name, "GET", "/health", timeout=timeout)
        except Exception:
            return False
        return code == 200

    @defer.inlineCallbacks
    def leader(self, timeout: float = 2.0) -> Generator[Any, Any, str | None]:
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

    async def waitHealthy(self, names: Iterable[str] | None = None, timeout: float = 30.0,
                          interval: float = 0.1) -> None:
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
                        name, describeExit(self.member(name).exits[-1:]),
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

    async def waitLeader(self, timeout: float = 30.0, interval: float = 0.1) -> str:
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
