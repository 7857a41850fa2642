# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
What a local cluster is made of: each ``Member``'s plan (name, URLs, kind)
and process record, and ``planMembers`` for a new cluster's layout.
"""

from __future__ import annotations

import os
import random
import signal
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet import defer

__all__ = ["ClusterError", "DEFAULT_BASE_PORT", "DEFAULT_PORT_STEP", "Member",
           "describeExit", "freePort", "planMembers"]

DEFAULT_BASE_PORT = 12379
DEFAULT_PORT_STEP = 10000


class ClusterError(Exception):
    """The cluster cannot do what was asked (the message says why)."""


def _ephemeralRange():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_handedOut: set = set()


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port nobody listens on, for a child process that must know its
    URLs before it starts (so it cannot bind port 0 itself).  The port is
    drawn at random from below the kernel's ephemeral range: a port the
    kernel hands out for port-0 listeners and outgoing connections (as
    other tests running in parallel make) would be taken back before the
    child binds it.  No port is handed out twice by one process.
    """
    low, _ = _ephemeralRange()
    floor = max(1024, low - 12000)
    for _ in range(64):
        port = random.randrange(floor, low)
        if port in _handedOut:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handedOut.add(port)
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def describeExit(exits):
    """``"exit status 1"``, ``"killed by SIGKILL"``: the last of ``exits``, in words."""
    if not exits:
        return "never started"
    kind, value = exits[-1]
    if kind == "signal":
        try:
            return "killed by %s" % (signal.Signals(value).name,)
        except ValueError:
            return "killed by signal %d" % (value,)
    return "exit status %d" % (value,)


class Member:
    """
    One member's plan (name, URLs, kind: ``"raftmux"`` or ``"etcd"``) and
    its current process.  ``exits`` lists how each of its processes ended
    (``("exit", code)`` or ``("signal", number)``); ``logStart`` is where
    the latest process's output begins in its log file.
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
        self.logStart = 0
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
                f.seek(self.logStart)
            return f.read().decode("utf-8", "replace")

    def tail(self, lines=15):
        return "\n".join(self.output(sinceStart=False).splitlines()[-lines:])

    def whenEnded(self):
        """A Deferred that fires with the exit once the current process ends."""
        if self.process is None:
            return defer.succeed(self.exits[-1] if self.exits else None)
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append(d)
        return d

    def processEnded(self, exit):
        """The current process ended with ``exit``: record it, tell the waiters."""
        self.exits.append(exit)
        self.process = None
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(exit)

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


def planMembers(size: int = 3, ports: int | str = DEFAULT_BASE_PORT, onePort: bool = False,
                step: int = DEFAULT_PORT_STEP, names: Sequence[str] | None = None,
                etcd: Iterable[str] = (), host: str = "127.0.0.1") -> list[Member]:
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
