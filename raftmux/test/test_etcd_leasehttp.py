# -*- test-case-name: raftmux.test.test_etcd_leasehttp -*-
"""
etcd's lease peer endpoints (L{raftmux.etcd.leasehttp}): a follower's
keep-alive and TimeToLive answered by the leader over loopback HTTP, the
endpoints' errors, the wrapper messages' bytes, and the same requests
sent to a real etcd 3.4's peer port (skipped without /usr/bin/etcd): our
client understands etcd's answers, and our endpoint answers as etcd's.
"""

import base64
import json
from io import BytesIO

from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.leasehttp import (
    LeaseHTTPForwarder,
    LeaseResource,
    decodeInternalRequest,
    decodeInternalResponse,
    encodeInternalRequest,
    encodeInternalResponse,
)
from raftmux.etcd.testing import FakeEtcdNode, startEtcd
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.httpbody import BytesProducer, readBody
from raftmux.mvcc import errors


class WrapperTests(SynchronousTestCase):

    def test_bytes(self):
        """LeaseInternalRequest{LeaseTimeToLiveRequest{ID: 5, keys: true}} as Go writes it."""
        request = pb.LeaseTimeToLiveRequest(ID=5, keys=True)
        self.assertEqual(encodeInternalRequest(request), b"\x0a\x04\x08\x05\x10\x01")
        self.assertEqual(decodeInternalRequest(b"\x0a\x04\x08\x05\x10\x01"), request)
        response = pb.LeaseTimeToLiveResponse(ID=5, TTL=3, grantedTTL=9)
        response.header.SetInParent()
        self.assertEqual(decodeInternalResponse(encodeInternalResponse(response)), response)
        self.assertRaises(DecodeError, decodeInternalResponse, b"")
        self.assertRaises(DecodeError, decodeInternalRequest, b"\x0a\x09\x08")

    @given(st.binary(max_size=40))
    def test_garbage(self, data):
        for decode in (decodeInternalRequest, decodeInternalResponse):
            try:
                decode(data)
            except DecodeError:
                pass


class Members(TestCase):
    """A leader and a follower over loopback, each with its own fake node."""

    timeout = 30

    def setUp(self):
        self.follower = FakeEtcdNode(reactor, memberID=0xF, isLeader=False)
        root = Resource()
        self.site = Site(root)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        url = "http://127.0.0.1:%d" % (self.port.getHost().port,)
        member, _ = self.successResultOf(self.follower.addMember([url], False))
        self.follower.stepDown(member.ID)
        self.leader = FakeEtcdNode(reactor, memberID=member.ID)
        self.leaderAPI = EtcdAPI(self.leader, reactor)
        self.leaderAPI.startService()
        self.addCleanup(self.leaderAPI.stopService)
        root.putChild(b"leases", LeaseResource(self.leaderAPI.lessor))
        self.agent = Agent(reactor)
        self.followerAPI = EtcdAPI(self.follower, reactor,
                                   leaseForwarder=LeaseHTTPForwarder(self.agent, self.follower))
        self.followerAPI.startService()
        self.addCleanup(self.followerAPI.stopService)
        self.url = url

    def grantOnLeader(self, ttl):
        return self.successResultOf(self.leaderAPI.lease.LeaseGrant(
            pb.LeaseGrantRequest(TTL=ttl))).ID

    async def post(self, path, body, method=b"POST"):
        response = await self.agent.request(
            method, (self.url + path).encode(), Headers({}),
            BytesProducer(body) if method == b"POST" else None)
        return response.code, await readBody(response, 1 << 20)

    async def test_renewThroughLeader(self):
        leaseID = self.grantOnLeader(30)
        await deferLater(reactor, 1.1, lambda: None)
        self.assertLess(self.leaderAPI.lessor.remaining(leaseID), 29)
        ttl = await self.followerAPI.lessor.renew(leaseID)
        self.assertEqual(ttl, 30)
        self.assertGreater(self.leaderAPI.lessor.remaining(leaseID), 29)

    async def test_timeToLiveThroughLeader(self):
        leaseID = self.grantOnLeader(30)
        self.successResultOf(self.leaderAPI.kv.Put(pb.PutRequest(key=b"k", lease=leaseID)))
        resp = await self.followerAPI.lease.LeaseTimeToLive(
            pb.LeaseTimeToLiveRequest(ID=leaseID, keys=True))
        self.assertEqual((resp.ID, resp.grantedTTL, list(resp.keys)), (leaseID, 30, [b"k"]))
        self.assertIn(resp.TTL, (29, 30))
        self.assertEqual(resp.header.member_id, self.follower.memberID)

    async def test_unknownLease(self):
        resp = await self.followerAPI.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=7))
        self.assertEqual(resp.TTL, -1)
        try:
            await self.followerAPI.lessor.renew(7)
        except errors.ErrLeaseNotFound:
            pass
        else:
            self.fail("renew of an unknown lease succeeded")

    async def test_leaderNotPrimary(self):
        """A leader that is not primary says so (400); the follower gives up in time."""
        leaseID = self.grantOnLeader(30)
        self.leaderAPI.lessor.demote()
        code, body = await self.post("/leases", pb.LeaseKeepAliveRequest(
            ID=leaseID).SerializeToString())
        self.assertEqual((code, body), (400, b"not a primary lessor\n"))
        self.followerAPI.lessor.requestTimeout = 0.3
        self.followerAPI.lessor.electionTimeout = 0.05
        try:
            await self.followerAPI.lessor.renew(leaseID)
        except errors.ErrTimeout:
            pass
        else:
            self.fail("renew succeeded against a non-primary leader")

    async def test_endpointErrors(self):
        code, body = await self.post("/leases", b"", method=b"GET")
        self.assertEqual((code, body), (405, b"Method Not Allowed\n"))
        code, body = await self.post("/leases", b"\xff\xff")
        self.assertEqual((code, body), (400, b"error unmarshalling request\n"))
        code, body = await self.post("/leases/nope", b"")
        self.assertEqual((code, body), (400, b'unknown request path "/leases/nope"\n'))
        code, body = await self.post("/leases", pb.LeaseKeepAliveRequest(ID=5).SerializeToString())
        self.assertEqual((code, body), (404, b"lease not found\n"))
        code, body = await self.post("/leases/internal", encodeInternalRequest(
            pb.LeaseTimeToLiveRequest(ID=5)))
        self.assertEqual((code, body), (404, b"lease not found\n"))

    async def test_applyTimeout(self):
        leaseID = self.grantOnLeader(30)
        self.leader.holdApplied = True
        code, body = await self.post("/leases", pb.LeaseKeepAliveRequest(
            ID=leaseID).SerializeToString())
        self.assertEqual((code, body),
                         (408, b"waiting for node to catch up its applied index has timed out\n"))


class AgainstEtcdTests(TestCase):
    """Our client and our endpoint beside a real etcd 3.4's peer endpoints."""

    timeout = 60

    async def test_sameAnswers(self):
        agent = Agent(reactor)
        client, peer = await startEtcd(self, reactor, agent)
        response = await agent.request(
            b"POST", (client + "/v3/lease/grant").encode(), Headers({}),
            FileBodyProducer(BytesIO(b'{"TTL":"60","ID":"4242"}')))
        self.assertEqual(response.code, 200)
        await readBody(response, 1 << 20)
        response = await agent.request(
            b"POST", (client + "/v3/kv/put").encode(), Headers({}),
            FileBodyProducer(BytesIO(json.dumps({
                "key": base64.b64encode(b"k").decode(), "lease": "4242"}).encode())))
        await readBody(response, 1 << 20)

        node = FakeEtcdNode(reactor, memberID=0xE, isLeader=False)
        member, _ = self.successResultOf(node.addMember([peer], False))
        node.stepDown(member.ID)
        forwarder = LeaseHTTPForwarder(agent, node)
        self.assertEqual(await forwarder.renew(member.ID, 4242), 60)
        resp = await forwarder.timeToLive(member.ID, pb.LeaseTimeToLiveRequest(ID=4242, keys=True))
        self.assertEqual((resp.ID, resp.grantedTTL, list(resp.keys)), (4242, 60, [b"k"]))
        self.assertIn(resp.TTL, (59, 60))
        try:
            await forwarder.renew(member.ID, 99)
        except errors.ErrLeaseNotFound:
            pass
        else:
            self.fail("etcd renewed an unknown lease")

        ours = FakeEtcdNode(reactor)
        api = EtcdAPI(ours, reactor)
        api.startService()
        self.addCleanup(api.stopService)
        self.successResultOf(api.lease.LeaseGrant(pb.LeaseGrantRequest(ID=4242, TTL=60)))
        self.successResultOf(api.kv.Put(pb.PutRequest(key=b"k", lease=4242)))
        root = Resource()
        root.putChild(b"leases", LeaseResource(api.lessor))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        mine = "http://127.0.0.1:%d" % (port.getHost().port,)
        requests = [
            ("/leases", pb.LeaseKeepAliveRequest(ID=4242).SerializeToString()),
            ("/leases", pb.LeaseKeepAliveRequest(ID=99).SerializeToString()),
            ("/leases", b"\xff\xff"),
            ("/leases/internal", encodeInternalRequest(pb.LeaseTimeToLiveRequest(ID=99))),
            ("/leases/internal", encodeInternalRequest(
                pb.LeaseTimeToLiveRequest(ID=4242, keys=True))),
        ]
        for path, body in requests:
            answers = []
            for base in (peer, mine):
                response = await agent.request(
                    b"POST", (base + path).encode(),
                    Headers({b"Content-Type": [b"application/protobuf"]}), BytesProducer(body))
                payload = await readBody(response, 1 << 20)
                if response.code == 200 and path == "/leases/internal":
                    decoded = decodeInternalResponse(payload)
                    decoded.TTL = min(decoded.TTL, 59)
                    payload = decoded.SerializeToString()
                answers.append((response.code, payload,
                                response.headers.getRawHeaders(b"content-type")))
            self.assertEqual(answers[1], answers[0], path)
