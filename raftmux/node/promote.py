# -*- test-case-name: raftmux.test.test_node_promote -*-
"""
etcd's learner promotion between members: only the leader knows whether a
learner has caught up (its raft progress), so a follower asked to promote
one forwards the request to the leader, as etcd 3.4 does, over the peer
port: ``POST /members/promote/<id in hex>``.

* 200: the member list (the ``/members`` JSON) after the promotion;
* 404 ``membership: ID not found``; 412 ``membership: can only promote a
  learner member`` or ``etcdserver: can only promote a learner member
  which is in sync with leader`` (Go's ``http.Error`` texts); 408 when the
  change timed out; 500 anything else.

``MembersWithPromote`` serves ``/members`` (unchanged) and the promote
endpoint on the peer Site; ``PromoteForwarder`` is the follower's side.
Both speak etcd's bytes, so either side may be etcd.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from raftmux.etcdpb import rpc_pb2
from raftmux.httpbody import readBody
from raftmux.mvcc.errors import (
    ErrMemberLearnerNotReady,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrTimeout,
    EtcdError,
)
from raftmux.rafthttp import formatID
from raftmux.rafthttp.server import NotFound, httpError
from raftmux.rafthttp.version import Member, membersJSON

__all__ = ["MembersWithPromote", "PromoteForwarder", "PromoteHTTPError", "PROMOTE_PREFIX"]

PROMOTE_PREFIX = "/members/promote/"
#: etcd's error texts on this endpoint (membership's and etcdserver's).
ID_NOT_FOUND = "membership: ID not found"
NOT_LEARNER = "membership: can only promote a learner member"
NOT_READY = "etcdserver: can only promote a learner member which is in sync with leader"
MAX_BODY = 1024 * 1024


class PromoteHTTPError(EtcdError):
    """The leader's promote endpoint answered with something unexpected."""

    def __init__(self, status, body):
        EtcdError.__init__(self, "member promote: unknown error(%s)" % (
            body.decode("utf-8", "replace").strip(),))
        self.status = status


class MembersWithPromote(Resource):
    """
    ``/members`` (``membersResource``, served as it is) and
    ``/members/promote/<id>``, which promotes through ``etcd`` (the
    member's ``IEtcdNode``: on the leader it checks the learner's progress).
    """

    isLeaf = True
    log = Logger()

    def __init__(self, membersResource, etcd):
        Resource.__init__(self)
        self._members = membersResource
        self._etcd = etcd

    def render(self, request):
        path = request.postpath
        if not path:
            return self._members.render(request)
        if len(path) != 2 or path[0] != b"promote":
            return NotFound().render(request)
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return httpError(request, 405, "Method Not Allowed")
        try:
            id = int(path[1].decode("ascii"), 16)
        except (UnicodeDecodeError, ValueError):
            return httpError(request, 400, 'strconv.ParseUint: parsing "%s": invalid syntax' % (
                path[1].decode("ascii", "replace"),))
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self._etcd.promoteMember(id)
        d.addCallbacks(self._promoted, self._failed, callbackArgs=(request, gone),
                       errbackArgs=(request, gone))
        return NOT_DONE_YET

    def _promoted(self, members, request, gone):
        if gone:
            return
        request.setHeader(b"Content-Type", b"application/json")
        request.write(membersJSON(
            [Member(m.ID, list(m.peerURLs), m.name, list(m.clientURLs), m.isLearner)
             for m in members]))
        request.finish()

    def _failed(self, failure, request, gone):
        if gone:
            return
        error = failure.value
        if isinstance(error, ErrMemberNotFound):
            body = httpError(request, 404, ID_NOT_FOUND)
        elif isinstance(error, ErrMemberNotLearner):
            body = httpError(request, 412, NOT_LEARNER)
        elif isinstance(error, ErrMemberLearnerNotReady):
            body = httpError(request, 412, NOT_READY)
        elif isinstance(error, ErrTimeout):
            body = httpError(request, 408, error.message)
        else:
            if not isinstance(error, EtcdError):
                self.log.failure("promote failed", failure)
            body = httpError(request, 500, str(error))
        request.write(body)
        request.finish()


class PromoteForwarder:
    """
    Asks the leader to promote a learner, at the leader's peer URLs, with
    ``agent`` (an ``IAgent`` that reaches peers), trying each URL in turn
    as etcd does.  Fires with the member list (``rpc_pb2.Member``s), or
    fails with etcd's error.
    """

    def __init__(self, agent):
        self._agent = agent

    def promote(self, leaderURLs, memberID):
        return defer.ensureDeferred(self._promote(list(leaderURLs), memberID))

    async def _promote(self, urls, memberID):
        last = None
        for url in urls:
            try:
                response = await self._agent.request(
                    b"POST", ("%s%s%s" % (url.rstrip("/"), PROMOTE_PREFIX,
                                          formatID(memberID))).encode("utf-8"))
                body = await readBody(response, MAX_BODY)
            except defer.CancelledError:
                raise
            except Exception as e:
                last = e
                continue
            return _answer(response.code, body)
        if last is None:
            raise PromoteHTTPError(0, b"the leader has no peer URLs")
        raise last


def _answer(code, body):
    if code == 200:
        return [rpc_pb2.Member(ID=int(m["id"]), name=m.get("name", ""),
                               peerURLs=m.get("peerURLs") or [],
                               clientURLs=m.get("clientURLs") or [],
                               isLearner=bool(m.get("isLearner")))
                for m in json.loads(body)]
    text = body.decode("utf-8", "replace")
    if code == 404:
        raise ErrMemberNotFound()
    if code == 412 and NOT_READY in text:
        raise ErrMemberLearnerNotReady()
    if code == 412 and NOT_LEARNER in text:
        raise ErrMemberNotLearner()
    if code == 408:
        raise ErrTimeout()
    raise PromoteHTTPError(code, body)
