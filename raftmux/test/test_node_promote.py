# -*- test-case-name: raftmux.test.test_node_promote -*-
"""
etcd's ``/members/promote/<id>`` between members (``raftmux.node.promote``):
the leader's endpoint over loopback, asked by ``PromoteForwarder``: the
member list after a promotion, and each of etcd's refusals (status, Go's
error text) coming back as the same ``EtcdError``.
"""

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import (
    ErrMemberLearnerNotReady,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrNoSpace,
    ErrTimeout,
)
from raftmux.node.promote import MembersWithPromote, PromoteForwarder, PromoteHTTPError
from raftmux.rafthttp import MembersResource
from raftmux.rafthttp.version import Member

LEARNER = 0x8e9e05c52164694d


class _Etcd:
    """``promoteMember`` answers from ``outcomes`` (a member list or an error)."""

    def __init__(self):
        self.asked = []
        self.outcome = None

    def promoteMember(self, id):
        self.asked.append(id)
        if isinstance(self.outcome, Exception):
            return defer.fail(self.outcome)
        return defer.succeed(self.outcome)


class PromoteTests(TestCase):
    timeout = 20

    def setUp(self):
        self.etcd = _Etcd()
        root = Resource()
        root.putChild(b"members", MembersWithPromote(
            MembersResource(1, lambda: [Member(7, ["http://p"], "n1")]), self.etcd))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = "http://127.0.0.1:%d" % (port.getHost().port,)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=pool)
        self.forwarder = PromoteForwarder(self.agent)

    async def test_promoted(self):
        """200: etcd's member JSON, read back as ``rpc_pb2.Member``s."""
        self.etcd.outcome = [rpc_pb2.Member(ID=LEARNER, name="n4", peerURLs=["http://a"],
                                            clientURLs=["http://c"], isLearner=False)]
        members = await self.forwarder.promote(["http://127.0.0.1:1", self.url], LEARNER)
        self.assertEqual(self.etcd.asked, [LEARNER])
        self.assertEqual([(m.ID, m.name, list(m.peerURLs), list(m.clientURLs), m.isLearner)
                          for m in members], [(LEARNER, "n4", ["http://a"], ["http://c"],
                                               False)])

    async def test_refusals(self):
        """etcd's statuses and texts, and back to the same errors."""
        for error, status, text in [
                (ErrMemberNotFound(), 404, b"membership: ID not found\n"),
                (ErrMemberNotLearner(), 412, b"membership: can only promote a learner member\n"),
                (ErrMemberLearnerNotReady(), 412, b"etcdserver: can only promote a learner "
                                                  b"member which is in sync with leader\n"),
                (ErrTimeout(), 408, b"etcdserver: request timed out\n")]:
            self.etcd.outcome = error
            response = await self.agent.request(
                b"POST", ("%s/members/promote/%x" % (self.url, LEARNER)).encode())
            self.assertEqual((response.code, await readBody(response)), (status, text))
            with self.assertRaises(type(error)):
                await self.forwarder.promote([self.url], LEARNER)
        self.etcd.outcome = ErrNoSpace()
        with self.assertRaises(PromoteHTTPError) as caught:
            await self.forwarder.promote([self.url], LEARNER)
        self.assertEqual(caught.exception.status, 500)

    async def test_notPromote(self):
        """``/members`` is unchanged; other paths 404, other methods 405, bad IDs 400."""
        response = await self.agent.request(b"GET", (self.url + "/members").encode())
        self.assertEqual(response.code, 200)
        self.assertIn(b'"name":"n1"', await readBody(response))
        for method, path, status in [(b"GET", "/members/promote/1", 405),
                                     (b"POST", "/members/promote/zz", 400),
                                     (b"POST", "/members/other/1", 404),
                                     (b"POST", "/members/promote", 404)]:
            response = await self.agent.request(method, (self.url + path).encode())
            await readBody(response)
            self.assertEqual(response.code, status, (method, path))
        self.assertEqual(self.etcd.asked, [])
