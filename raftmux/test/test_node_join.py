# -*- test-case-name: raftmux.test.test_node_join -*-
"""``raftmux.node.join.fetchMembers``: which member list a joining member takes."""

import json

from twisted.internet.defer import ensureDeferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from raftmux.node.join import JoinError, fetchMembers


class _Answer:
    """A whole ``GET /members`` answer, delivered at once."""

    def __init__(self, members, clusterID=b"c1"):
        self.code = 200
        self.headers = Headers({b"X-Etcd-Cluster-ID": [clusterID]})
        self._body = json.dumps([
            {"id": str(i), "name": n, "peerURLs": [u], "clientURLs": []}
            for i, n, u in members]).encode()

    def deliverBody(self, protocol):
        protocol.makeConnection(None)
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class _Agent:
    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.asked.append(uri)
        answer = self.answers[uri]
        return fail(answer) if isinstance(answer, Exception) else succeed(answer)


OLD = _Answer([(1, "n1", "http://a"), (2, "n2", "http://b")])
NEW = _Answer([(1, "n1", "http://a"), (2, "n2", "http://b"), (3, "n3", "http://c")])


def listsC(members):
    return any(m["peerURLs"] == ["http://c"] for m in members)


class FetchMembersTests(SynchronousTestCase):
    def fetch(self, answers, accept=None):
        agent = _Agent(answers)
        d = ensureDeferred(fetchMembers(agent, ["http://a", "http://b"], accept=accept))
        return agent, d

    def test_firstAnswerWithoutAccept(self):
        agent, d = self.fetch({b"http://a/members": OLD, b"http://b/members": NEW})
        self.assertEqual(len(self.successResultOf(d)[1]), 2)
        self.assertEqual(agent.asked, [b"http://a/members"])

    def test_aMemberThatHasNotAppliedTheAddIsPassedOver(self):
        """
        The member that answered the add lists the new member; one that has
        not applied it yet does not, and is not believed.
        """
        agent, d = self.fetch({b"http://a/members": OLD, b"http://b/members": NEW}, listsC)
        clusterID, members = self.successResultOf(d)
        self.assertEqual([m["name"] for m in members], ["n1", "n2", "n3"])
        self.assertEqual(agent.asked, [b"http://a/members", b"http://b/members"])

    def test_nobodyListsItTheFirstAnswerIsReturned(self):
        """The caller then says "add it first" about a real list, not a failure."""
        agent, d = self.fetch({b"http://a/members": ConnectionRefusedError(),
                               b"http://b/members": OLD}, listsC)
        self.assertEqual(len(self.successResultOf(d)[1]), 2)

    def test_nobodyAnswers(self):
        agent, d = self.fetch({b"http://a/members": ConnectionRefusedError(),
                               b"http://b/members": ConnectionRefusedError()}, listsC)
        failure = self.failureResultOf(d, JoinError)
        self.assertIn("http://a", str(failure.value))
        self.assertIn("http://b", str(failure.value))
