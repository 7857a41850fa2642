# -*- test-case-name: raftmux.test.test_etcd_gateway -*-
"""
etcd's JSON gateway (L{raftmux.etcd.gateway}) on a loopback port over the
fake node: unary routes, errors and their HTTP statuses, the streaming
routes (watch, keep-alive, snapshot) as newline-delimited JSON, client
disconnects, size limits; and the python ``etcd3gw`` client against it.
"""

import base64
import hashlib
import json
from io import BytesIO

from twisted.internet import defer, reactor, threads
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.server import Site

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.gateway import GatewayResource
from raftmux.etcd.maintenance import readSnapshotFile
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.mvcc import KeySpace


def b64(data):
    return base64.b64encode(data).decode()


class Lines(Protocol):
    """Collects a streamed body's JSON lines until ``enough(objects)``."""

    def __init__(self, enough=lambda objects: False):
        self.enough = enough
        self.objects = []
        self.buffer = b""
        self.raw = b""
        self.done = defer.Deferred()
        self.reached = defer.Deferred()

    def dataReceived(self, data):
        self.raw += data
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.objects.append(json.loads(line))
        if not self.reached.called and self.enough(self.objects):
            self.reached.callback(self.objects)

    def connectionLost(self, reason):
        if self.buffer.strip():
            # grpc-gateway writes no newline after a stream's error object.
            self.objects.append(json.loads(self.buffer))
            self.buffer = b""
        if not self.reached.called:
            self.reached.callback(self.objects)
        self.done.callback(self.objects)


class TrackingSite(Site):
    """A Site that knows which of its connections are still open."""

    def __init__(self, resource):
        Site.__init__(self, resource)
        self.open = set()

    def buildProtocol(self, addr):
        protocol = Site.buildProtocol(self, addr)
        lost = protocol.connectionLost

        def connectionLost(reason):
            self.open.discard(protocol)
            return lost(reason)

        protocol.connectionLost = connectionLost
        self.open.add(protocol)
        return protocol


class GatewayTestCase(TestCase):

    timeout = 30

    def setUp(self):
        self.addCleanup(self.connectionsClosed)
        self.node = FakeEtcdNode(reactor)
        self.api = EtcdAPI(self.node, reactor, maxRequestBytes=4096)
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.resource = GatewayResource(self.api.services, maxRequestBytes=4096)
        self.site = TrackingSite(self.resource)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = "http://127.0.0.1:%d" % (self.port.getHost().port,)
        self.agent = Agent(reactor)

    async def connectionsClosed(self):
        """Wait (bounded) until every server-side connection is gone."""
        for _ in range(200):
            if not self.site.open:
                return
            await deferLater(reactor, 0.01, lambda: None)
        for protocol in list(self.site.open):
            protocol.loseConnection()
        await deferLater(reactor, 0, lambda: None)

    def request(self, path, body=b"", method=b"POST"):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        return self.agent.request(
            method, (self.base + path).encode(),
            Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body)) if method == b"POST" else None)

    async def post(self, path, body=b"", method=b"POST"):
        response = await self.request(path, body, method)
        return response, await readBody(response)

    async def json(self, path, body=b""):
        response, raw = await self.post(path, body)
        return response.code, json.loads(raw)


class UnaryTests(GatewayTestCase):

    async def test_putAndRange(self):
        code, put = await self.json("/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"bar")})
        self.assertEqual(code, 200)
        self.assertEqual(put["header"], {
            "cluster_id": str(self.node.clusterID), "member_id": str(self.node.memberID),
            "revision": "2", "raft_term": "2"})
        response, raw = await self.post("/v3/kv/range", {"key": b64(b"foo")})
        self.assertEqual(json.loads(raw)["kvs"], [{
            "key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1",
            "value": "YmFy"}])
        self.assertEqual(json.loads(raw)["count"], "1")
        h = response.headers
        self.assertEqual(h.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(h.getRawHeaders(b"grpc-metadata-content-type"), [b"application/grpc"])
        self.assertEqual(h.getRawHeaders(b"access-control-allow-origin"), [b"*"])

    async def test_errors(self):
        code, body = await self.json("/v3/kv/range", {"key": ""})
        self.assertEqual((code, body), (400, {
            "error": "etcdserver: key is not provided",
            "message": "etcdserver: key is not provided", "code": 3}))
        code, body = await self.json("/v3/lease/revoke", {"ID": 5})
        self.assertEqual((code, body["code"], body["error"]),
                         (404, 5, "etcdserver: requested lease not found"))
        code, body = await self.json("/v3/kv/range", b'{"key":"!!!"}')
        self.assertEqual((code, body["code"], body["message"]),
                         (400, 3, "illegal base64 data at input byte 0"))
        await self.json("/v3/kv/put", {"key": b64(b"a")})
        await self.json("/v3/kv/put", {"key": b64(b"a")})
        await self.json("/v3/kv/compaction", {"revision": 3})
        code, body = await self.json("/v3/kv/range", {"key": b64(b"a"), "revision": 2})
        self.assertEqual((code, body["code"]), (400, 11))
        self.node.readError = __import__("raftmux.mvcc.errors", fromlist=["x"]).ErrTimeout()
        code, body = await self.json("/v3/kv/range", {"key": b64(b"a")})
        self.assertEqual((code, body["code"], body["error"]),
                         (503, 14, "etcdserver: request timed out"))

    async def test_routing(self):
        response, body = await self.post("/v3/kv/nope", {})
        self.assertEqual((response.code, body), (404, b"Not Found\n"))
        response, body = await self.post("/v3/kv/range", method=b"GET")
        self.assertEqual((response.code, body), (405, b"Method Not Allowed\n"))
        response, body = await self.post("/v3/kv/range", method=b"OPTIONS")
        self.assertEqual(response.code, 200)
        code, body = await self.json("/v3beta/maintenance/status", {})
        self.assertEqual((code, body["version"]), (200, "3.4.23"))
        code, body = await self.json("/v3/kv/put?x=1", {"key": b64(b"q")})
        self.assertEqual(code, 200)

    async def test_emptyBodies(self):
        """An empty body is an empty request; alarm and defragment answer {}."""
        for path in ("/v3/maintenance/alarm", "/v3/maintenance/defragment"):
            code, body = await self.json(path, b"")
            self.assertEqual((code, body), (200, {}))
        code, body = await self.json("/v3/cluster/member/list", b"")
        self.assertNotIn("revision", body["header"])

    async def test_tooLarge(self):
        """Over --max-request-bytes + 512 KiB: refused as gRPC refuses it."""
        code, body = await self.json("/v3/kv/put", {"key": b64(b"a"),
                                                    "value": b64(b"x" * (530 * 1024))})
        self.assertEqual((code, body["code"]), (429, 8))
        self.assertTrue(body["error"].startswith("grpc: received message larger than max ("))
        code, body = await self.json("/v3/watch", b" " * (900 * 1024) + b"{}")
        self.assertEqual((code, body["code"], body["error"]),
                         (429, 8, "grpc: received message larger than max"))
        code, body = await self.json("/v3/kv/put", {"key": b64(b"a"), "value": b64(b"x" * 5000)})
        self.assertEqual((code, body["error"]), (400, "etcdserver: request is too large"))

    async def test_txnAndHash(self):
        await self.json("/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"baz")})
        code, body = await self.json("/v3/kv/txn", {
            "compare": [{"key": b64(b"foo"), "target": "VALUE", "value": b64(b"baz")}],
            "success": [{"request_range": {"key": b64(b"foo")}}]})
        self.assertTrue(body["succeeded"])
        self.assertEqual(body["responses"][0]["response_range"]["header"], {"revision": "2"})
        code, body = await self.json("/v3/maintenance/hash", {})
        self.assertEqual(code, 200)
        self.assertIn("hash", body)


class StreamTests(GatewayTestCase):

    async def test_watch(self):
        """Created, then events, each {"result": ...} on its own line."""
        response = await self.request("/v3/watch", (
            b'{"create_request":{"key":"Zm9v"}}'
            b'{"create_request":{"key":"YQ==","watch_id":7,"prev_kv":true}}'))
        self.assertEqual(response.code, 200)
        lines = Lines(lambda objects: len(objects) >= 4)
        response.deliverBody(lines)
        for _ in range(50):
            if self.api.watchHub.counts()[0] == 2:
                break
            await defer.succeed(None)
            await threads.deferToThread(lambda: None)
        await self.json("/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"1")})
        await self.json("/v3/kv/put", {"key": b64(b"a"), "value": b64(b"2")})
        objects = await lines.reached
        self.assertEqual([list(o) for o in objects], [["result"]] * 4)
        results = [o["result"] for o in objects]
        self.assertEqual(results[0]["created"], True)
        self.assertNotIn("watch_id", results[0])
        self.assertEqual((results[1]["watch_id"], results[1]["created"]), ("7", True))
        self.assertEqual(results[2]["events"], [{"kv": {
            "key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1",
            "value": "MQ=="}}])
        self.assertEqual(results[3]["watch_id"], "7")
        self.assertEqual(lines.raw.count(b"\n"), 4)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
        lines.transport.stopProducing()
        await lines.done
        for _ in range(50):
            if self.api.watchHub.counts() == (0, 0):
                break
            await threads.deferToThread(lambda: None)
        self.assertEqual(self.api.watchHub.counts(), (0, 0))

    async def test_watchBadFirstRequest(self):
        """A first request that does not parse: a unary error, code 2 (etcd's)."""
        code, body = await self.json("/v3/watch", b'{"create_request":{"key":"!!"}}')
        self.assertEqual((code, body), (500, {
            "error": "illegal base64 data at input byte 0",
            "message": "illegal base64 data at input byte 0", "code": 2}))

    async def test_keepAlive(self):
        code, grant = await self.json("/v3/lease/grant", {"TTL": 60})
        leaseID = grant["ID"]
        response = await self.request("/v3/lease/keepalive",
                                      (json.dumps({"ID": leaseID}) + '{"ID":5}').encode())
        lines = Lines()
        response.deliverBody(lines)
        objects = await lines.done
        self.assertEqual([o["result"].get("TTL") for o in objects], ["60", None])
        self.assertEqual([o["result"]["ID"] for o in objects], [leaseID, "5"])
        self.assertTrue(lines.raw.endswith(b"}\n"))

    async def test_keepAliveError(self):
        """A renewal error ends the stream with grpc-gateway's stream error."""
        self.node.stepDown(0)
        self.api.lessor.requestTimeout = 0.01
        self.api.lessor.electionTimeout = 0.01
        response = await self.request("/v3/lease/keepalive", b'{"ID":5}')
        lines = Lines()
        response.deliverBody(lines)
        objects = await lines.done
        self.assertEqual(response.code, 503)
        self.assertEqual(objects, [{"error": {
            "grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader",
            "http_status": "Service Unavailable"}}])

    async def test_snapshot(self):
        for i in range(50):
            await self.json("/v3/kv/put", {"key": b64(b"k%d" % (i,)), "value": b64(b"v" * 100)})
        response = await self.request("/v3/maintenance/snapshot", b"{}")
        lines = Lines()
        response.deliverBody(lines)
        objects = await lines.done
        blobs = [base64.b64decode(o["result"]["blob"]) for o in objects]
        data = b"".join(blobs[:-1])
        self.assertEqual(blobs[-1], hashlib.sha256(data).digest())
        restored = KeySpace()
        restored.restore(readSnapshotFile(data + blobs[-1]))
        self.assertEqual(restored.revision, 51)


class Etcd3gwTests(GatewayTestCase):
    """The python etcd3gw client (PyPI) against the gateway."""

    def setUp(self):
        try:
            import etcd3gw  # noqa: F401
        except ImportError:
            raise SkipTest("etcd3gw is not installed (pip install etcd3gw)")
        GatewayTestCase.setUp(self)
        from etcd3gw.client import Etcd3Client
        self.client = Etcd3Client(host="127.0.0.1", port=self.port.getHost().port,
                                  api_path="/v3/", timeout=10)
        # No idle keep-alive connections left behind at the end of a test.
        self.client.session.headers["Connection"] = "close"
        self.addCleanup(self.client.session.close)

    def call(self, f, *args, **kwargs):
        return threads.deferToThread(f, *args, **kwargs)

    async def until(self, condition):
        for _ in range(200):
            if condition():
                return
            await threads.deferToThread(lambda: None)
        raise AssertionError("condition never held")

    async def stopWatch(self, cancel):
        """Stop etcd3gw's watch and wait until the server has let go of it."""
        await self.call(cancel)
        await self.until(lambda: self.api.watchHub.counts() == (0, 0))
        await deferLater(reactor, 0, lambda: None)

    async def test_kv(self):
        c = self.client
        self.assertTrue(await self.call(c.put, "foo", "bar"))
        self.assertEqual(await self.call(c.get, "foo"), [b"bar"])
        await self.call(c.put, "foo/a", "1")
        await self.call(c.put, "foo/b", "2")
        got = await self.call(c.get_prefix, "foo/")
        self.assertEqual(sorted(v for v, _ in got), [b"1", b"2"])
        self.assertTrue(await self.call(c.create, "new", "x"))
        self.assertFalse(await self.call(c.create, "new", "y"))
        self.assertTrue(await self.call(c.replace, "new", "x", "z"))
        self.assertEqual(await self.call(c.get, "new"), [b"z"])
        self.assertTrue(await self.call(c.delete, "foo"))
        self.assertEqual(await self.call(c.get, "foo"), [])
        self.assertFalse(await self.call(c.delete, "foo"))
        status = await self.call(c.status)
        self.assertEqual(status["version"], "3.4.23")
        members = await self.call(c.members)
        self.assertEqual(len(members), 1)

    async def test_lease(self):
        c = self.client
        lease = await self.call(c.lease, 30)
        await self.call(c.put, "leased", "v", lease=lease)
        self.assertEqual(await self.call(lease.refresh), 30)
        self.assertEqual(await self.call(lease.keys), [b"leased"])
        self.assertIn(await self.call(lease.ttl), (29, 30))
        self.assertTrue(await self.call(lease.revoke))
        self.assertEqual(await self.call(c.get, "leased"), [])
        self.assertEqual(await self.call(lease.ttl), -1)

    async def test_watch(self):
        c = self.client
        events, cancel = await self.call(c.watch_prefix, "w/")
        self.addCleanup(self.stopWatch, cancel)
        await self.until(lambda: self.api.watchHub.counts()[0])
        await self.call(c.put, "w/1", "a")
        await self.call(c.delete, "w/1")

        def twoEvents():
            return [next(events), next(events)]

        got = await self.call(twoEvents)
        self.assertEqual([(e["kv"]["key"], e.get("type", "PUT")) for e in got],
                         [(b"w/1", "PUT"), (b"w/1", "DELETE")])
        self.assertEqual(got[0]["kv"]["value"], b"a")
