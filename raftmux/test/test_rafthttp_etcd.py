# -*- test-case-name: raftmux.test.test_rafthttp_etcd -*-
"""
A raftmux Transport as member p2 of a 2-member cluster whose member e1 is
a real etcd 3.4 (skipped when /usr/bin/etcd or etcdctl is missing).  A
minimal follower behind an IRaft grants the vote, acks appends and echoes
heartbeat contexts; etcd must elect itself with our vote, commit an
``etcdctl put`` through our acks and serve a linearizable ``get``.  Both of
etcd's streams to us and both of ours to etcd must be established.
"""

import os
import re
import shutil
import tempfile

from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux import raftpb
from raftmux.cluster import freePort
from raftmux.rafthttp import (
    Member,
    MembersResource,
    Transport,
    VersionResource,
    clusterID,
    memberID,
)
from raftmux.rafthttp.codec import isLinkHeartbeat
from raftmux.rafthttp.peer import PIPELINE
from raftmux.rafthttp.stream import MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft, LoggedProcess, waitFor
from raftmux.raftpb import Message

ETCD = "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class Follower(FakeRaft):
    """Spec 12's follower, just enough for etcd to lead and commit."""

    def __init__(self, me):
        FakeRaft.__init__(self)
        self.me = me
        self.transport = None
        self.contexts = []

    def process(self, m):
        reply = None
        if m.type in (raftpb.MsgVote, raftpb.MsgPreVote):
            reply = Message(type=m.type + 1, to=getattr(m, "from"), term=m.term)
        elif m.type == raftpb.MsgApp:
            reply = Message(type=raftpb.MsgAppResp, to=getattr(m, "from"), term=m.term,
                            index=m.index + len(m.entries))
        elif m.type == raftpb.MsgHeartbeat and not isLinkHeartbeat(m):
            reply = Message(type=raftpb.MsgHeartbeatResp, to=getattr(m, "from"), term=m.term)
            if m.HasField("context"):
                reply.context = m.context
                self.contexts.append(m.context)
        if reply is not None:
            setattr(reply, "from", self.me)
            self.transport.send([reply])
        return FakeRaft.process(self, m)


class EtcdHarness(TestCase):
    """Runs etcd as e1 beside a Transport as p2; the tests are in subclasses."""

    timeout = 40

    follower = Follower

    async def _start(self, etcdArgs=(), **transportOptions):
        """
        Start our Transport (``transportOptions`` go to it) and etcd as e1
        (``etcdArgs`` added to its command line).  etcd's data directory is
        on /dev/shm when there is one, so its fsyncs are cheap.
        """
        if not (os.path.exists(ETCD) and os.path.exists(ETCDCTL)):
            raise SkipTest("etcd 3.4 (%s) and etcdctl are not installed" % (ETCD,))
        site = Site(None)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.p2URL = "http://127.0.0.1:%d" % (port.getHost().port,)
        self.e1URL = "http://127.0.0.1:%d" % (freePort(),)
        self.clientURL = "http://127.0.0.1:%d" % (freePort(),)
        self.e1 = memberID([self.e1URL], "tok")
        self.p2 = memberID([self.p2URL], "tok")
        cid = clusterID([self.e1, self.p2])
        self.raft = self.follower(self.p2)
        self.transport = Transport(self.p2, cid, [self.p2URL], self.raft, reactor=reactor,
                                   **transportOptions)
        self.raft.transport = self.transport
        root = self.transport.resource()
        root.putChild(b"version", VersionResource())
        root.putChild(b"members", MembersResource(cid, lambda: [
            Member(self.p2, [self.p2URL], "p2"), Member(self.e1, [self.e1URL], "e1")]))
        site.resource = root
        self.addCleanup(self.transport.stop)

        self.dir = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.addCleanup(shutil.rmtree, self.dir, True)
        log = self.logFile = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.addCleanup(log.close)
        self.etcd = LoggedProcess(log)
        process = reactor.spawnProcess(self.etcd, ETCD, [
            ETCD, "--name", "e1", "--data-dir", os.path.join(self.dir, "e1"),
            "--listen-peer-urls", self.e1URL, "--initial-advertise-peer-urls", self.e1URL,
            "--listen-client-urls", self.clientURL, "--advertise-client-urls", self.clientURL,
            "--initial-cluster", "e1=%s,p2=%s" % (self.e1URL, self.p2URL),
            "--initial-cluster-token", "tok", "--initial-cluster-state", "new"]
            + list(etcdArgs),
            env=dict(os.environ))
        self.addCleanup(lambda: self.etcd.ended)
        self.addCleanup(lambda: process.signalProcess("TERM")
                        if process.pid is not None else None)
        self.transport.addPeer(self.e1, [self.e1URL])

    def _ctl(self, *args):
        return getProcessOutputAndValue(
            ETCDCTL, ["--endpoints", self.clientURL, "--command-timeout=5s"] + list(args),
            env=dict(os.environ, ETCDCTL_API="3"))

    def _etcdLog(self):
        self.logFile.flush()
        with open(os.path.join(self.dir, "etcd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")


class EtcdInteropTests(EtcdHarness):
    @defer.inlineCallbacks
    def test_etcdCommitsThroughUs(self):
        """
        etcd wins the election with our vote, commits a put through our acks
        and answers a linearizable get (heartbeat context echoed); all four
        streams are up.
        """
        yield defer.ensureDeferred(self._start())
        peer = self.transport.peer(self.e1)
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: any(m.type == raftpb.MsgApp for m in self.raft.messages),
            timeout=15, what="etcd's first MsgApp"))
        out, err, code = yield self._ctl("put", "k", "v")
        self.assertEqual((code, out.split()), (0, [b"OK"]), err)
        out, err, code = yield self._ctl("get", "k")
        self.assertEqual((code, out.split()), (0, [b"k", b"v"]), err)
        self.assertTrue(self.raft.contexts, "no ReadIndex heartbeat context seen")
        types = {m.type for m in self.raft.messages}
        self.assertTrue({raftpb.MsgVote, raftpb.MsgApp, raftpb.MsgHeartbeat} <= types)
        for kind in (MESSAGE, MSGAPP):
            self.assertTrue(peer.writers[kind].working, "etcd's %s stream to us" % (kind,))
            self.assertTrue(peer.readers[kind].connected, "our %s stream to etcd" % (kind,))
        self.assertIsNotNone(self.transport.activeSince(self.e1))
        log = self._etcdLog()
        self.assertIn("elected leader", log)
        self.assertNotIn("panic", log)


class _NoStreams(Resource):
    """
    ``/raft/stream/...`` answered as etcd 2.0 would (404, no
    ``X-Server-Version``): etcd reads that as "unsupported stream type" and
    keeps dialling without marking us inactive (spec Surprise 2).
    """

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.refused = 0

    def render(self, request):
        self.refused += 1
        request.setResponseCode(404)
        return b"404 page not found\n"


class EtcdPipelineTests(EtcdHarness):
    @defer.inlineCallbacks
    def test_etcdAcceptsOurPipeline(self):
        """
        With etcd's stream dials to us refused, our stream writers never
        work, so every vote, MsgAppResp and MsgHeartbeatResp we send goes
        as a ``POST /raft``.  etcd answers 204 and acts on them: it wins the
        election with our vote, commits a put (needs our MsgAppResp) and
        serves a linearizable get (needs our echoed heartbeat context); its
        own /metrics count bytes received from us.
        """
        registry = CollectorRegistry()
        yield defer.ensureDeferred(self._start(registry=registry))
        refuse = _NoStreams()
        self.transport.resource().children[b"raft"].putChild(b"stream", refuse)
        peer = self.transport.peer(self.e1)
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: any(m.type == raftpb.MsgApp for m in self.raft.messages),
            timeout=15, what="etcd's first MsgApp"))
        out, err, code = yield self._ctl("put", "k", "via-pipeline")
        self.assertEqual((code, out.split()), (0, [b"OK"]), err)
        out, err, code = yield self._ctl("get", "k")
        self.assertEqual((code, out.split()), (0, [b"k", b"via-pipeline"]), err)
        self.assertTrue(self.raft.contexts, "no ReadIndex heartbeat context seen")
        self.assertGreater(refuse.refused, 0)
        for kind in (MESSAGE, MSGAPP):
            self.assertFalse(peer.writers[kind].working)
        self.assertEqual(peer.channel(Message(type=raftpb.MsgAppResp)), PIPELINE)
        # Only the pipeline counts sent bytes after a 204 here.
        label = {"To": "%x" % (self.e1,)}
        sent = registry.get_sample_value("etcd_network_peer_sent_bytes_total", label)
        self.assertGreater(sent, 0)
        self.assertEqual(registry.get_sample_value(
            "etcd_network_peer_sent_failures_total", label), 0)
        agent = Agent(reactor)
        response = yield agent.request(b"GET", (self.clientURL + "/metrics").encode())
        text = (yield readBody(response)).decode()
        received = re.search(r'etcd_network_peer_received_bytes_total\{From="%x"\} (\S+)'
                             % (self.p2,), text)
        self.assertIsNotNone(received, "etcd counted nothing from us")
        # etcd counts a body before its 204, we count after it; ours was
        # read first, so etcd's can only be ahead.
        self.assertGreaterEqual(float(received.group(1)), sent)
        self.assertNotIn("panic", self._etcdLog())
