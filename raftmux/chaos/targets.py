# -*- test-case-name: raftmux.test.test_chaos_parts,raftmux.test.test_chaos_run -*-
"""
What a chaos run tests: a cluster of ``twistd raftmux`` members or of etcd
3.4 members, each inside its namespace (``ip netns exec``), and the
client the workload uses to talk to one member.

The workload sees members only through ``IRegisterClient``: read, write
and compare-and-set on a key.  ``RaftmuxClient`` speaks the node's
``/kv`` API; ``EtcdClient`` etcd 3.4's v3 JSON gateway.  When the node
grows etcd's v3 API, it can be tested with ``EtcdClient`` unchanged.

A client answers with a value or fails with ``Failed`` (the operation
certainly took no effect) or ``Indeterminate`` (it may have); anything it
cannot classify is indeterminate, because a wrong "failed" can fake an
anomaly and a wrong "indeterminate" only weakens the check.
"""

import base64
import io
import json
import os
import signal
from typing import Any
from urllib.parse import quote

from twisted.internet import defer
from twisted.internet.error import ConnectError
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from zope.interface import Interface, implementer

from raftmux.cluster import ETCD, LocalCluster, Member, twistdCommand

__all__ = ["Failed", "Indeterminate", "IRegisterClient", "HTTPClient", "RaftmuxClient", "EtcdClient",
           "NamespaceCluster", "Target", "TARGETS"]


class Failed(Exception):
    """The operation certainly did not take effect."""


class Indeterminate(Exception):
    """The operation may or may not have taken effect."""


class IRegisterClient(Interface):
    """One member's key/value API as the workload needs it."""

    def read(key, serializable=False):
        """Deferred: the value (``str``) or None when the key is absent."""

    def write(key, value):
        """Deferred: fires once the member acknowledged the write."""

    def cas(key, prev, new):
        """Deferred: True if ``key`` held ``prev`` and now holds ``new``, else False."""


class HTTPClient:
    """A persistent-connection Agent shared by a target's clients."""

    def __init__(self, reactor, connections):
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = connections
        self.pool.retryAutomatically = False
        self.agent = Agent(reactor, pool=self.pool, connectTimeout=2)

    async def request(self, method, url, body=None, headers=None):
        producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
        try:
            response = await self.agent.request(method, url.encode("ascii"),
                                                Headers(headers or {}), producer)
        except ConnectError as e:
            # Never reached the member: nothing was sent.
            raise Failed("cannot connect: %s" % (e.__class__.__name__,)) from None
        data = await readBody(response)
        return response.code, data

    def close(self):
        return self.pool.closeCachedConnections()


def _error(body):
    try:
        return str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


# The node's 503 answers that mean "not proposed": no leader, not the
# leader, raft not running, or the proposal dropped by raft itself.
_RAFTMUX_REFUSALS = ("no leader", "not the leader", "not running raft", "ProposalDropped",
                     "NotLeader")


@implementer(IRegisterClient)
class RaftmuxClient:
    """The node's ``/kv/<key>`` API (``?prevValue=`` for compare-and-set)."""

    def __init__(self, http, url):
        self.http = http
        self.url = url

    async def read(self, key, serializable=False):
        path = "%s/kv/%s%s" % (self.url, quote(key), "?serializable=true" if serializable
                               else "")
        try:
            code, body = await self.http.request(b"GET", path)
        except Failed:
            raise
        except Exception as e:
            raise Failed("read: %s" % (e.__class__.__name__,)) from None
        if code == 200:
            return body.decode("utf-8")
        if code == 404:
            return None
        raise Failed("%d %s" % (code, _error(body)))

    async def _put(self, path, value):
        try:
            code, body = await self.http.request(b"PUT", path, value.encode("utf-8"))
        except Failed:
            raise
        except Exception as e:
            raise Indeterminate("%s" % (e.__class__.__name__,)) from None
        if code in (200, 412):
            return code == 200
        error = "%d %s" % (code, _error(body))
        if 400 <= code < 500 or any(r in error for r in _RAFTMUX_REFUSALS):
            raise Failed(error)
        raise Indeterminate(error)

    async def write(self, key, value):
        await self._put("%s/kv/%s" % (self.url, quote(key)), value)

    async def cas(self, key, prev, new):
        return await self._put("%s/kv/%s?prevValue=%s" % (self.url, quote(key),
                                                          quote(prev, safe="")), new)


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@implementer(IRegisterClient)
class EtcdClient:
    """etcd 3.4's v3 JSON gateway: ``/v3/kv/range``, ``/v3/kv/put``, ``/v3/kv/txn``."""

    def __init__(self, http, url):
        self.http = http
        self.url = url

    async def _post(self, path, request):
        return await self.http.request(b"POST", self.url + path, json.dumps(request).encode(),
                                       {b"content-type": [b"application/json"]})

    async def read(self, key, serializable=False):
        request = {"key": _b64(key)}
        if serializable:
            request["serializable"] = True
        try:
            code, body = await self._post("/v3/kv/range", request)
        except Failed:
            raise
        except Exception as e:
            raise Failed("read: %s" % (e.__class__.__name__,)) from None
        if code != 200:
            raise Failed("%d %s" % (code, _error(body)))
        kvs = json.loads(body).get("kvs") or []
        if not kvs:
            return None
        return base64.b64decode(kvs[0].get("value", "")).decode("utf-8")

    async def _change(self, path, request):
        try:
            code, body = await self._post(path, request)
        except Failed:
            raise
        except Exception as e:
            raise Indeterminate("%s" % (e.__class__.__name__,)) from None
        if code != 200:
            error = "%d %s" % (code, _error(body))
            if 400 <= code < 500:
                raise Failed(error)
            raise Indeterminate(error)
        return json.loads(body)

    async def write(self, key, value):
        await self._change("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    async def cas(self, key, prev, new):
        answer = await self._change("/v3/kv/txn", {
            "compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL",
                         "value": _b64(prev)}],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(new)}}]})
        return bool(answer.get("succeeded", False))


class NamespaceCluster(LocalCluster):
    """
    A ``LocalCluster`` whose members each run inside their own namespace:
    they listen on their own address and advertise the relay's address
    for them as their peer URL.
    """

    def __init__(self, directory, network, kind, flags=(), etcdFlags=(), **kwargs):
        self.network = network
        members = []
        for name in network.names:
            members.append(Member(name, "http://%s:2379" % (network.memberIP(name),),
                                  "http://%s:2380" % (network.relayIP(name),), kind))
        LocalCluster.__init__(self, directory, members, token="raftmux-chaos", flags=flags,
                              etcdFlags=etcdFlags, **kwargs)

    def command(self, name):
        m = self.member(name)
        listenPeer = "http://%s:2380" % (self.network.memberIP(name),)
        flags = [
            "--name", m.name, "--data-dir", m.dataDir,
            "--listen-peer-urls", listenPeer, "--initial-advertise-peer-urls", m.peerURL,
            "--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
            "--initial-cluster", self.initialCluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
        ]
        if m.kind == "etcd":
            argv = [self.etcd] + flags + self.etcdFlags
        else:
            argv = twistdCommand() + ["-n", "--pidfile=", "raftmux"] + flags + self.flags
        return self.network.inNamespace(name, argv)


class Target:
    """
    A cluster to test, started inside the network's namespaces.
    ``kind``: ``"raftmux"`` or ``"etcd"``.
    """

    def __init__(self, reactor, network, directory, kind="raftmux", flags=(), clients=6):
        self.reactor = reactor
        self.kind = kind
        self.network = network
        if kind == "etcd":
            etcdFlags = ["--logger", "zap", "--log-outputs", "stderr"] + list(flags)
            self.cluster = NamespaceCluster(directory, network, "etcd", etcdFlags=etcdFlags,
                                            reactor=reactor)
        else:
            self.cluster = NamespaceCluster(directory, network, "raftmux", flags=flags,
                                            reactor=reactor)
        self.http = HTTPClient(reactor, max(2, clients))
        self._ids = {}

    @property
    def names(self):
        return list(self.cluster.members)

    def available(self):
        """Why this target cannot run here, or None."""
        if self.kind == "etcd" and not os.path.exists(ETCD):
            return "etcd is not installed (%s)" % (ETCD,)
        return None

    async def start(self, timeout=60.0):
        self.cluster.start()
        await self.cluster.waitHealthy(timeout=timeout)
        await self.waitLeader(timeout)

    async def waitLeader(self, timeout=30.0):
        deadline = self.reactor.seconds() + timeout
        while self.reactor.seconds() < deadline:
            name = await self.leader()
            if name is not None:
                return name
            await _sleep(self.reactor, 0.2)
        return None

    def client(self, name):
        url = self.cluster.member(name).clientURL
        if self.kind == "etcd":
            return EtcdClient(self.http, url)
        return RaftmuxClient(self.http, url)

    async def leader(self):
        """The leader's name as the running members see it, or None."""
        if self.kind != "etcd":
            return await self.cluster.leader()
        return await self._etcdLeader()

    async def _etcdLeader(self):
        leaders = set()
        for m in self.cluster.running():
            try:
                code, body = await _timeout(self.reactor, self.http.request(
                    b"POST", m.clientURL + "/v3/maintenance/status", b"{}"), 2.0)
                status = json.loads(body)
            except Exception:
                continue
            if code != 200:
                continue
            self._ids[str(status["header"]["member_id"])] = m.name
            leaders.add(str(status.get("leader", "0")))
        if len(leaders) != 1:
            return None
        name = self._ids.get(leaders.pop())
        if name is None or not self.cluster.member(name).running:
            return None
        return name

    # -- faults ------------------------------------------------------------------

    def running(self, name):
        return self.cluster.member(name).running

    def kill(self, name):
        """kill -9; fires once the process is reaped."""
        return self.cluster.kill(name, signal.SIGKILL)

    def restart(self, name):
        if not self.cluster.member(name).running:
            self.cluster.start(name)

    def signal(self, name, number):
        process = self.cluster.member(name).process
        if process is not None:
            try:
                process.signalProcess(number)
            except Exception:  # ended meanwhile
                pass

    async def stop(self):
        for name in self.names:
            self.signal(name, signal.SIGCONT)
        await self.cluster.stopAll(timeout=5.0)
        await self.http.close()


TARGETS = ("raftmux", "etcd")


def _sleep(reactor, seconds):
    d: defer.Deferred[Any] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def _timeout(reactor, coroutine, seconds):
    d = defer.ensureDeferred(coroutine)
    d.addTimeout(seconds, reactor)
    return d
