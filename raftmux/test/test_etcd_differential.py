# -*- test-case-name: raftmux.test.test_etcd_differential -*-
"""
The JSON gateway over the v3 services against a real etcd 3.4 (skipped
when /usr/bin/etcd is missing): one script of raw JSON bodies goes to
etcd's gateway and to ours (over the single-member fake node), and every
answer must be the same: HTTP status, and the JSON once what legitimately
differs is taken out (cluster and member IDs, raft term, member URLs,
database sizes and raft indexes, a lease's remaining seconds).

Streams too: the lines of a watch (control answers, catch-up, the
compaction answer) and of a keep-alive.
"""

import json
from io import BytesIO

from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.server import Site

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.gateway import GatewayResource
from raftmux.etcd.testing import FakeEtcdNode, startEtcd

UNARY = [
    ("/v3/kv/put", '{"key":"Zm9v","value":"YmFy"}'),
    ("/v3/kv/put", '{"key":"Zm9v","value":"YmF6","prev_kv":true}'),
    ("/v3/kv/put", '{"key":"YQ==","value":"MQ=="}'),
    ("/v3/kv/put", '{"key":"YWI=","value":"Mg==","lease":"5"}'),
    ("/v3/kv/put", '{"key":"YQ==","ignore_value":true,"value":"eA=="}'),
    ("/v3/kv/put", '{"key":"","value":"eA=="}'),
    ("/v3/kv/range", '{"key":"Zm9v"}'),
    ("/v3/kv/range", '{"key":"YQ==","range_end":"AA==","sort_order":"DESCEND","limit":"1"}'),
    ("/v3/kv/range", '{"key":"AA==","range_end":"AA==","count_only":true}'),
    ("/v3/kv/range", '{"key":"AA==","rangeEnd":"AA==","keysOnly":true,"sortTarget":"MOD"}'),
    ("/v3/kv/range", '{"key":"Zm9v","revision":"2","serializable":true}'),
    ("/v3/kv/range", '{"key":"Zm9v","revision":99}'),
    ("/v3/kv/range", '{"key":"bm9uZQ=="}'),
    ("/v3/kv/range", '{"key":"Zm9v","bogus":1}'),
    ("/v3/kv/range", ''),
    ("/v3/kv/range", 'null'),
    ("/v3/kv/range", '{"key":123}'),
    ("/v3/kv/range", '{"key":"!!!"}'),
    ("/v3/kv/range", '{"key":"Zm9"}'),
    ("/v3/kv/range", '{"key":"Zg="}'),
    ("/v3/kv/range", '{"key":"Zm9v","limit":5.5}'),
    ("/v3/kv/range", '{"key":"Zm9v","sort_order":"FOO"}'),
    ("/v3/kv/range", '{"key":"Zm9v","serializable":"true"}'),
    ("/v3/kv/range", '[1]'),
    ("/v3/kv/range", '{"key":"Zm9v",'),
    ("/v3/kv/txn", '{"compare":[{"key":"Zm9v","target":"VALUE","value":"YmF6"}],'
                   '"success":[{"request_range":{"key":"Zm9v"}},'
                   '{"request_put":{"key":"dHg=","value":"MQ=="}}],'
                   '"failure":[{"request_delete_range":{"key":"Zm9v"}}]}'),
    ("/v3/kv/txn", '{"compare":[{"key":"Zm9v","target":"VERSION","result":"GREATER",'
                   '"version":"10"}],"success":[{"request_put":{"key":"eQ=="}}],'
                   '"failure":[{"request_range":{"key":"AA==","range_end":"AA=="}}]}'),
    ("/v3/kv/txn", '{"success":[{"request_put":{"key":"eA=="}},{"request_put":{"key":"eA=="}}]}'),
    ("/v3/kv/txn", '{"success":[{}]}'),
    ("/v3/kv/txn", '{"compare":"x"}'),
    ("/v3/kv/deleterange", '{"key":"YQ==","range_end":"Yg==","prev_kv":true}'),
    ("/v3/kv/deleterange", '{"key":"bm9uZQ=="}'),
    ("/v3/kv/compaction", '{"revision":"3"}'),
    ("/v3/kv/compaction", '{"revision":"3"}'),
    ("/v3/kv/compaction", '{"revision":"300"}'),
    ("/v3/kv/range", '{"key":"Zm9v","revision":"2"}'),
    ("/v3/lease/grant", '{"TTL":"600","ID":"4242"}'),
    ("/v3/lease/grant", '{"TTL":"600","ID":"4242"}'),
    ("/v3/lease/grant", '{"TTL":"9000000001"}'),
    ("/v3/lease/grant", '{"TTL":"1","ID":"4343"}'),
    ("/v3/kv/put", '{"key":"bGVhc2Vk","value":"dg==","lease":"4242"}'),
    ("/v3/lease/timetolive", '{"ID":"4242","keys":true}'),
    ("/v3/kv/lease/timetolive", '{"ID":"5"}'),
    ("/v3/lease/leases", '{}'),
    ("/v3/kv/lease/leases", ''),
    ("/v3/lease/revoke", '{"ID":"4343"}'),
    ("/v3/lease/revoke", '{"ID":"4242"}'),
    ("/v3/kv/lease/revoke", '{"ID":"4242"}'),
    ("/v3/kv/range", '{"key":"bGVhc2Vk"}'),
    ("/v3/maintenance/status", '{}'),
    ("/v3/maintenance/alarm", '{}'),
    ("/v3/maintenance/alarm", '{"action":"DEACTIVATE","alarm":"NOSPACE"}'),
    ("/v3/maintenance/defragment", '{}'),
    ("/v3/cluster/member/list", '{}'),
    ("/v3/cluster/member/remove", '{"ID":"12345"}'),
    ("/v3/cluster/member/promote", '{"ID":"12345"}'),
    ("/v3/cluster/member/update", '{"ID":"12345","peerURLs":["http://10.9.9.9:2380"]}'),
    ("/v3/cluster/member/add", '{"peerURLs":["ftp://x"]}'),
    ("/v3/cluster/member/add", '{"peerURLs":["http://10.1.1.1"]}'),
    ("/v3/cluster/member/add", '{}'),
    ("/v3/auth/authenticate", '{"name":"root","password":"x"}'),
    ("/v3/auth/enable", '{}'),
    ("/v3/auth/disable", '{}'),
    ("/v3/auth/user/list", '{}'),
    ("/v3/auth/role/list", '{}'),
    ("/v3/auth/user/get", '{"name":"u"}'),
    ("/v3/auth/user/delete", '{"name":"u"}'),
    ("/v3/auth/user/changepw", '{"name":"u","password":"p"}'),
    ("/v3/auth/user/grant", '{"user":"u","role":"r"}'),
    ("/v3/auth/user/revoke", '{"name":"u","role":"r"}'),
    ("/v3/auth/user/add", '{}'),
    ("/v3/auth/role/add", '{}'),
    ("/v3/auth/role/get", '{"role":"r"}'),
    ("/v3/auth/role/delete", '{"role":"r"}'),
    ("/v3/auth/role/grant", '{"name":"r"}'),
    ("/v3/auth/role/revoke", '{"role":"r"}'),
    ("/v3/maintenance/transfer-leadership", '{"targetID":"77"}'),
    ("/v3/kv/nope", '{}'),
    ("/v3beta/kv/range", '{"key":"Zm9v"}'),
]

WATCH = (
    '{"create_request":{"key":"YQ==","range_end":"YQ=="}}'
    '{"create_request":{"key":"Zm9v","watch_id":3}}'
    '{"create_request":{"key":"Zm9v","watch_id":3}}'
    '{"create_request":{"key":"AA==","range_end":"AA==","start_revision":"1"}}'
    '{"progress_request":{}}'
    '{"cancel_request":{"watch_id":3}}'
    '{"cancel_request":{"watch_id":99}}'
    '{"create_request":{"key":"AA==","range_end":"AA==","start_revision":"4","prev_kv":true,'
    '"filters":["NODELETE"]}}'
    '{"create_request":{"key":"AA==","range_end":"AA==","start_revision":"3"}}'
    '{"create_request":{}}'
    '{"create_request":{"key":"Zm9v","start_revision":"-5"}}'
    '{"create_request":{"key":"Zm9v","start_revision":"50"}}'
    '{}'
)
WATCH_LINES = 15


def normalise(value, path=""):
    """Take out what legitimately differs between two members."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("cluster_id", "member_id", "raft_term", "leader", "dbSize",
                     "dbSizeInUse", "raftIndex", "raftAppliedIndex", "raftTerm", "hash"):
                out[k] = "*"
            elif k == "members":
                out[k] = len(v)
            elif k == "TTL" and "timetolive" in path:
                out[k] = "*" if int(v) > 0 else v
            else:
                out[k] = normalise(v, path)
        return out
    if isinstance(value, list):
        return [normalise(v, path) for v in value]
    return value


class _Lines(Protocol):

    def __init__(self, count):
        self.count = count
        self.buffer = b""
        self.lines = []
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer and len(self.lines) < self.count:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.lines.append(json.loads(line))
        if len(self.lines) >= self.count and not self.done.called:
            self.done.callback(self.lines)
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if self.buffer.strip() and len(self.lines) < self.count:
            self.lines.append(json.loads(self.buffer))
        if not self.done.called:
            self.done.callback(self.lines)


class GatewayDifferentialTests(TestCase):

    timeout = 120

    async def startEtcd(self):
        self.etcdURL, _ = await startEtcd(self, reactor, self.agent)

    def startOurs(self):
        self.node = FakeEtcdNode(reactor)
        self.api = EtcdAPI(self.node, reactor)
        self.api.startService()
        self.addCleanup(self.api.stopService)
        port = reactor.listenTCP(0, Site(GatewayResource(self.api.services)),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.oursURL = "http://127.0.0.1:%d" % (port.getHost().port,)

    def request(self, base, path, body):
        return self.agent.request(
            b"POST", (base + path).encode(), Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body.encode())))

    async def unary(self, base, path, body):
        response = await self.request(base, path, body)
        raw = await readBody(response)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode()
        return response.code, normalise(parsed, path)

    async def stream(self, base, path, body, count):
        response = await self.request(base, path, body)
        lines = _Lines(count)
        response.deliverBody(lines)
        got = await lines.done.addTimeout(20, reactor)
        return response.code, [normalise(line, path) for line in got]

    def byWatcher(self, answer):
        """
        The answers to the requests, in order, then the catch-up answers in
        watch ID order: etcd catches watchers up in Go's map order.
        """
        code, lines = answer
        control = [line for line in lines if "events" not in line["result"]
                   and "compact_revision" not in line["result"]]
        later = [line for line in lines if line not in control]
        later.sort(key=lambda line: (int(line["result"].get("watch_id", 0)),
                                     "events" in line["result"]))
        return code, control + later

    async def test_script(self):
        """Every unary answer of the script is etcd's, and so are the streams'."""
        self.agent = Agent(reactor)
        await self.startEtcd()
        self.startOurs()
        compared = 0
        for path, body in UNARY:
            theirs = await self.unary(self.etcdURL, path, body)
            ours = await self.unary(self.oursURL, path, body)
            if path == "/v3/cluster/member/update":
                # etcd checks the peer URLs against members; ours finds no member first.
                self.assertEqual(theirs[1]["code"], ours[1]["code"], (path, body))
                continue
            self.assertEqual(ours, theirs, (path, body))
            compared += 1
        theirs = await self.stream(self.etcdURL, "/v3/watch", WATCH, WATCH_LINES)
        ours = await self.stream(self.oursURL, "/v3/watch", WATCH, WATCH_LINES)
        self.assertEqual(len(theirs[1]), WATCH_LINES)
        self.assertEqual(self.byWatcher(ours), self.byWatcher(theirs))
        body = '{"ID":"5"}{"ID":"6"}'
        theirs = await self.stream(self.etcdURL, "/v3/lease/keepalive", body, 2)
        ours = await self.stream(self.oursURL, "/v3/lease/keepalive", body, 2)
        self.assertEqual(ours, theirs)
        for body in ('{"create_request":{"key":"!!"}}', '{"ID":"x"}'):
            path = "/v3/watch" if "create" in body else "/v3/lease/keepalive"
            theirs = await self.unary(self.etcdURL, path, body)
            ours = await self.unary(self.oursURL, path, body)
            self.assertEqual(ours, theirs)
        self.assertGreater(compared, 70)
