# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
``Supervisor``: what ``python -m raftmux.cluster run`` does in the
foreground: start the cluster, print where it is, serve the control
socket (one ``command_<name>`` method per command), stop everything on the
way out.
"""

import json
import os
import signal
import time

from twisted.internet import defer

from raftmux.cluster.control import controlFactory, socketPath
from raftmux.cluster.members import ClusterError, describeExit

__all__ = ["Supervisor", "DEFAULT_DIR", "stopReactor"]

DEFAULT_DIR = "raftmux-cluster"


def stopReactor(reactor):
    from twisted.internet.error import ReactorNotRunning
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


class Supervisor:
    """The cluster in the foreground (``run``/``shutdown``) and its commands."""

    def __init__(self, cluster, out, timeout=30.0, directoryFlag=DEFAULT_DIR):
        self.cluster = cluster
        self.out = out
        self.timeout = timeout
        self.directoryFlag = directoryFlag
        self.healthy = False
        self.exitCode = 0
        self.port = None

    def say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def saveState(self):
        self.cluster.save({"socket": socketPath(self.cluster.directory)})

    def memberExited(self, member, pid, exit):
        if not self.cluster.stopping:
            self.say("raftmux cluster: %s (pid %s) exited: %s" % (
                member.name, pid, describeExit([exit])))
        self.saveState()

    async def run(self):
        cluster = self.cluster
        began = time.monotonic()
        path = socketPath(cluster.directory)
        from twisted.internet.endpoints import UNIXServerEndpoint
        if os.path.exists(path):
            os.unlink(path)
        self.port = await UNIXServerEndpoint(cluster.reactor, path).listen(
            controlFactory(self))
        cluster.start()
        self.saveState()
        self.say("raftmux cluster: %d members, data and logs in %s" % (
            len(cluster.members), cluster.directory))
        for m in cluster.members.values():
            shared = " (clients and peers)" if m.clientURL == m.peerURL else \
                "  peer %s" % (m.peerURL,)
            self.say("  %-4s pid %-7d %s%s%s" % (m.name, m.pid, m.clientURL, shared,
                                                   "  [etcd]" if m.kind == "etcd" else ""))
        try:
            await cluster.waitHealthy(timeout=self.timeout)
        except ClusterError as e:
            if cluster.stopping:  # Ctrl-C while starting
                return
            self.say("raftmux cluster: %s" % (e,))
            self.exitCode = 1
            stopReactor(cluster.reactor)
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
            "" if self.directoryFlag == DEFAULT_DIR else " --dir %s" % (self.directoryFlag,))
        self.say("     %s status | kill leader | start NAME" % (command,))
        self.say("Ctrl-C (or %s stop) stops every member." % (command,))

    async def shutdown(self):
        running = [m.name for m in self.cluster.running()]
        if running:
            self.say("raftmux cluster: stopping %s" % (", ".join(running),))
        await self.cluster.stopAll()
        if self.port is not None:
            await self.port.stopListening()
        path = socketPath(self.cluster.directory)
        if os.path.exists(path):
            os.unlink(path)
        self.cluster.save({"pid": None})
        self.say("raftmux cluster: stopped")

    # -- the control socket's commands (raftmux.cluster.control) --------------------

    async def _named(self, request):
        """The member a request names; ``leader`` means the current leader."""
        name = request.get("name")
        if name == "leader":
            name = await self.cluster.leader()
            if name is None:
                raise ClusterError("no leader right now")
        return name

    async def command_status(self, request):
        members = await self.status()
        leader = await self.cluster.leader()
        seenBy, gossip = await self.gossipStates(leader)
        for row in members:
            row["gossip"] = gossip.get(row["name"])
        return {"ok": True, "members": members, "leader": leader, "gossipFrom": seenBy}

    async def gossipStates(self, prefer=None, timeout=2.0):
        """
        ``(name, {member name: its gossip columns})`` as the first raftmux
        member that answers ``GET /cluster/gossip`` sees them (``prefer``,
        the leader, first), or ``(None, {})``.
        """
        names = [prefer] if prefer else []
        names += [m.name for m in self.cluster.running()
                  if m.kind == "raftmux" and m.name not in names]
        for name in names:
            try:
                code, body, _ = await self.cluster.request(name, "GET", "/cluster/gossip",
                                                           timeout=timeout)
                if code != 200:
                    continue
                rows = json.loads(body)["members"]
            except Exception:  # refused, timed out, not a view: ask the next one
                continue
            return name, {r["name"]: r.get("gossip") for r in rows if r.get("name")}
        return None, {}

    async def command_kill(self, request):
        name = await self._named(request)
        sig = request.get("signal") or signal.SIGKILL
        exit = await self.cluster.kill(name, sig)
        return {"ok": True, "name": name, "exit": describeExit([exit]) if exit else None}

    async def command_start(self, request):
        name = await self._named(request)
        m = self.cluster.start(name)
        self.saveState()
        await self.cluster.waitHealthy([name], timeout=self.timeout)
        return {"ok": True, "name": name, "pid": m.pid}

    async def command_restart(self, request):
        name = await self._named(request)
        m = await self.cluster.restart(name)
        self.saveState()
        await self.cluster.waitHealthy([name], timeout=self.timeout)
        return {"ok": True, "name": name, "pid": m.pid}

    async def command_add(self, request):
        name = request.get("name")
        m = await self.cluster.add(name)
        self.saveState()
        await self.cluster.waitHealthy([name], timeout=self.timeout)
        return {"ok": True, "name": name, "pid": m.pid, "id": m.id, "clientURL": m.clientURL}

    async def command_remove(self, request):
        name = await self._named(request)
        id = await self.cluster.remove(name)
        self.saveState()
        return {"ok": True, "name": name, "id": id}

    def command_stop(self, request):
        self.cluster.reactor.callLater(0, stopReactor, self.cluster.reactor)
        return {"ok": True}

    async def status(self):
        rows = []
        members = list(self.cluster.members.values())
        health = await defer.gatherResults([self.cluster.health(m.name) for m in members])
        for m, healthy in zip(members, health, strict=True):
            rows.append({"name": m.name, "pid": m.pid, "kind": m.kind,
                         "state": "running" if m.running else
                         "stopped (%s)" % (describeExit(m.exits),),
                         "healthy": healthy, "clientURL": m.clientURL, "peerURL": m.peerURL})
        return rows
