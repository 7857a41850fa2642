# -*- test-case-name: raftmux.test.test_rafthttp_server -*-
"""
The peer helpers etcd calls on other members, in etcd's format (spec 1.10,
1.11): ``GET /version`` and ``GET /members``.  The node mounts them beside
``/raft``.
"""

import json

from twisted.web.resource import Resource

from raftmux.rafthttp.headers import CLUSTER_VERSION, SERVER_VERSION
from raftmux.rafthttp.server import NotFound, httpError

__all__ = ["VersionResource", "MembersResource", "Member", "membersJSON"]


def _allowGetOnly(request):
    request.setHeader(b"Allow", b"GET")
    return httpError(request, 405, "Method Not Allowed")


def _goJSON(value):
    """Compact JSON escaped the way Go's encoder escapes (<, >, & as \\u00XX)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").encode("utf-8"))


class VersionResource(Resource):
    """
    ``/version``: ``{"etcdserver":"3.4.23","etcdcluster":...}``, no newline.
    ``clusterVersion`` is a string or a callable returning one (None for
    ``not_decided``).  ``extra`` fields are added after etcd's two (etcd
    ignores fields it does not know; a raftmux node names itself there).
    """

    isLeaf = True

    def __init__(self, clusterVersion=CLUSTER_VERSION, serverVersion=SERVER_VERSION, extra=None):
        Resource.__init__(self)
        self.clusterVersion = clusterVersion
        self.serverVersion = serverVersion
        self.extra = dict(extra or {})

    def render(self, request):
        if request.postpath:
            return NotFound().render(request)
        if request.method != b"GET":
            return _allowGetOnly(request)
        cluster = self.clusterVersion() if callable(self.clusterVersion) else self.clusterVersion
        request.setHeader(b"Content-Type", b"application/json")
        body = {"etcdserver": self.serverVersion, "etcdcluster": cluster or "not_decided"}
        body.update(self.extra)
        return _goJSON(body)


class Member:
    """One entry of ``/members``."""

    def __init__(self, id, peerURLs, name="", clientURLs=(), isLearner=False):
        self.id = id
        self.peerURLs = list(peerURLs)
        self.name = name
        self.clientURLs = list(clientURLs)
        self.isLearner = isLearner

    def asJSON(self):
        d = {"id": self.id, "peerURLs": self.peerURLs}
        if self.isLearner:
            d["isLearner"] = True
        if self.name:
            d["name"] = self.name
        if self.clientURLs:
            d["clientURLs"] = self.clientURLs
        return d


def membersJSON(members):
    """The body of ``/members``: sorted by ID, then a newline."""
    return _goJSON([m.asJSON() for m in sorted(members, key=lambda m: m.id)]) + b"\n"


class MembersResource(Resource):
    """``/members`` (exact path): ``members()`` gives the ``Member`` list."""

    isLeaf = True

    def __init__(self, clusterID, members):
        Resource.__init__(self)
        self.clusterID = clusterID
        self.members = members

    def render(self, request):
        if request.postpath:
            return NotFound().render(request)
        if request.method != b"GET":
            return _allowGetOnly(request)
        request.setHeader(b"X-Etcd-Cluster-ID", b"%x" % (self.clusterID,))
        request.setHeader(b"Content-Type", b"application/json")
        return membersJSON(self.members())
