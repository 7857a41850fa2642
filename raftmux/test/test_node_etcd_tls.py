# -*- test-case-name: raftmux.test.test_node_etcd_tls -*-
"""
Issue 8 point 4: a real etcd 3.4 member started with its ``--peer-*`` TLS
flags and a raftmux ``RaftNode`` in one cluster over https with mutual TLS
(both sides require and verify the other's certificate).  etcd elects
itself with our vote and commits ``etcdctl put``s; a linearizable get
works; the raftmux member applies etcd's entries to its key space, and a
write made on it (an etcd request it proposes, which raft takes to the
etcd leader) is read back by etcdctl.  Skipped without etcd.
"""

import io
import json
import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody

from raftmux.cluster import freePort
from raftmux.node import NodeConfig, RaftNode
from raftmux.node.dialer import PLAIN
from raftmux.node.testing import bindPorts, startNode, stopNode, urlOf
from raftmux.rafthttp.testing import LoggedProcess, waitFor
from raftmux.testing.tlsca import CertificateAuthority, writeFiles
from raftmux.tls import ClientPolicy, TLSInfo

ETCD = "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class EtcdOverHTTPSTests(TestCase):

    timeout = 60

    async def test_etcdCommitsWithUsOverMutualTLS(self):
        if not (os.path.exists(ETCD) and os.path.exists(ETCDCTL)):
            raise SkipTest("etcd 3.4 (%s) and etcdctl are not installed" % (ETCD,))
        self.dir = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.addCleanup(shutil.rmtree, self.dir, True)
        ca = CertificateAuthority()
        caFile = ca.writeCAFile(self.dir)
        e1Cert, e1Key = writeFiles(self.dir, "e1", ca.issue("e1", ipAddresses=["127.0.0.1"],
                                                            usage="both"))
        p2Cert, p2Key = writeFiles(self.dir, "p2", ca.issue("p2", ipAddresses=["127.0.0.1"],
                                                            usage="both"))
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        p2URL = urlOf(port, "https")
        e1URL = "https://127.0.0.1:%d" % (freePort(),)
        clientURL = "http://127.0.0.1:%d" % (freePort(),)
        cluster = "e1=%s,p2=%s" % (e1URL, p2URL)
        config = NodeConfig({
            "name": "p2", "data-dir": os.path.join(self.dir, "p2"),
            "listen-peer-urls": p2URL, "initial-advertise-peer-urls": p2URL,
            "listen-client-urls": p2URL, "advertise-client-urls": p2URL,
            "initial-cluster": cluster, "initial-cluster-token": "tok",
            "peer-cert-file": p2Cert, "peer-key-file": p2Key,
            "peer-trusted-ca-file": caFile, "peer-client-cert-auth": True})
        node = RaftNode(config, reactor=reactor, listen=False, fsync=False)
        await startNode(node, port)
        self.addCleanup(stopNode, node)

        log = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.addCleanup(log.close)
        etcd = LoggedProcess(log)
        process = reactor.spawnProcess(etcd, ETCD, [
            ETCD, "--name", "e1", "--data-dir", os.path.join(self.dir, "e1"),
            "--listen-peer-urls", e1URL, "--initial-advertise-peer-urls", e1URL,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--initial-cluster", cluster, "--initial-cluster-token", "tok",
            "--initial-cluster-state", "new",
            "--peer-cert-file", e1Cert, "--peer-key-file", e1Key,
            "--peer-trusted-ca-file", caFile, "--peer-client-cert-auth"],
            env=dict(os.environ))
        self.addCleanup(lambda: etcd.ended)
        self.addCleanup(lambda: process.signalProcess("TERM") if process.pid else None)

        def ctl(*args):
            return getProcessOutputAndValue(
                ETCDCTL, ["--endpoints", clientURL, "--command-timeout=5s"] + list(args),
                env=dict(os.environ, ETCDCTL_API="3"))

        await waitFor(reactor, lambda: node.leader == config.memberIDs["e1"], timeout=30,
                      what="etcd elected with our vote")
        out, err, code = await ctl("put", "k", "over-mtls")
        self.assertEqual((code, out.split()), (0, [b"OK"]), err)
        out, err, code = await ctl("get", "k")
        self.assertEqual((code, out.split()), (0, [b"k", b"over-mtls"]), err)
        out, err, code = await ctl("member", "list")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.count(b"started"), 2, out)
        # etcd is spoken to in plain rafthttp (over TLS), never muxado.
        e1Address = ("127.0.0.1", int(e1URL.rsplit(":", 1)[1]))
        self.assertEqual(node.dialer.kinds.get(e1Address), PLAIN)
        self.assertEqual(node.dialer.sessions, {})
        # The raftmux member applied etcd's entries to its key space...
        await waitFor(reactor, lambda: node.keySpace.get(b"k") is not None, what="apply")
        self.assertEqual(node.keySpace.get(b"k").value, b"over-mtls")
        # ... and its own writes are etcd's requests, which etcd applies.
        clientDir = os.path.join(self.dir, "client")
        certFile, keyFile = writeFiles(clientDir, "client", ca.issue("op", usage="client"))
        agent = Agent(reactor, contextFactory=ClientPolicy(TLSInfo(
            certFile=certFile, keyFile=keyFile, trustedCAFile=caFile)),
            pool=HTTPConnectionPool(reactor, persistent=False))
        response = await agent.request(b"PUT", (p2URL + "/kv/x").encode(), None,
                                       FileBodyProducer(io.BytesIO(b"through-p2")))
        body = await readBody(response)
        self.assertEqual(response.code, 200, body)
        self.assertGreater(json.loads(body)["index"], 0)
        out, err, code = await ctl("get", "x")
        self.assertEqual((code, out.split()), (0, [b"x", b"through-p2"]), err)
        log.flush()
        with open(os.path.join(self.dir, "etcd.log"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
        self.assertIn("elected leader", text)
        self.assertNotIn("panic", text)
