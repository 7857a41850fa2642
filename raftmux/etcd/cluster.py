# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
etcd's Cluster service (``etcdserver/api/v3rpc/member.go``): membership
changes are the node's; this layer checks peer URLs as etcd's
``types.NewURLs`` does (http, https, unix or unixs; ``host:port``; no
path; sorted) and answers with etcd's shapes.  Cluster headers carry no
revision, as etcd's do.
"""

from urllib.parse import urlsplit

from raftmux.etcd.deferred import deferredMethod
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc.errors import ErrMemberBadURLs

__all__ = ["ClusterService", "parsePeerURLs"]

_SCHEMES = ("http", "https", "unix", "unixs")


def _hasPort(netloc):
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        close = host.find("]")
        return close != -1 and host[close + 1:close + 2] == ":"
    return host.count(":") == 1


def parsePeerURLs(urls):
    """
    The URLs as etcd stores them (normalised, sorted), or ErrMemberBadURLs
    for a list etcd's ``types.NewURLs`` refuses.
    """
    if not urls:
        raise ErrMemberBadURLs()
    out = []
    for raw in urls:
        text = raw.strip()
        if any(c in text for c in " \t\r\n\x7f") or any(ord(c) < 0x20 for c in text):
            raise ErrMemberBadURLs()
        try:
            u = urlsplit(text)
        except ValueError:
            raise ErrMemberBadURLs()
        if u.scheme not in _SCHEMES or not _hasPort(u.netloc) or u.path:
            raise ErrMemberBadURLs()
        normal = "%s://%s" % (u.scheme, u.netloc)
        if u.query:
            normal += "?" + u.query
        if u.fragment:
            normal += "#" + u.fragment
        out.append(normal)
    return sorted(out)


class ClusterService:
    """``etcdserverpb.Cluster``."""

    def __init__(self, node, headers, guard):
        self._node = node
        self._headers = headers
        self._guard = guard

    @deferredMethod
    async def MemberAdd(self, request):
        self._guard.check(request)
        urls = parsePeerURLs(list(request.peerURLs))
        member, members = await self._node.addMember(urls, request.isLearner)
        return rpc_pb2.MemberAddResponse(
            header=self._headers.cluster(),
            member=rpc_pb2.Member(ID=member.ID, peerURLs=member.peerURLs,
                                  isLearner=member.isLearner),
            members=members)

    @deferredMethod
    async def MemberRemove(self, request):
        self._guard.check(request)
        members = await self._node.removeMember(request.ID)
        return rpc_pb2.MemberRemoveResponse(header=self._headers.cluster(), members=members)

    @deferredMethod
    async def MemberUpdate(self, request):
        self._guard.check(request)
        members = await self._node.updateMember(request.ID, list(request.peerURLs))
        return rpc_pb2.MemberUpdateResponse(header=self._headers.cluster(), members=members)

    @deferredMethod
    def MemberList(self, request):
        self._guard.check(request)
        return rpc_pb2.MemberListResponse(
            header=self._headers.cluster(), members=self._node.members())

    @deferredMethod
    async def MemberPromote(self, request):
        self._guard.check(request)
        members = await self._node.promoteMember(request.ID)
        return rpc_pb2.MemberPromoteResponse(header=self._headers.cluster(), members=members)
