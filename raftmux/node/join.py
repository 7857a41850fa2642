# -*- test-case-name: raftmux.test.test_node_join,raftmux.test.test_node -*-
"""
Joining a running cluster (``--initial-cluster-state existing``): ask the
other members for ``GET /members``, as etcd does (spec 11.6).
"""

import json

from twisted.internet import defer

from raftmux.httpbody import readBody
from raftmux.rafthttp import parseID

__all__ = ["fetchMembers", "JoinError", "MEMBERS_BODY_LIMIT"]

#: The most of a ``/members`` answer read (a member is about 200 bytes).
MEMBERS_BODY_LIMIT = 4 * 1024 * 1024


class JoinError(Exception):
    """No member of the cluster answered with its member list."""


async def fetchMembers(agent, peerURLs, reactor=None, timeout=10.0, accept=None):
    """
    ``(clusterID, [{"id", "name", "peerURLs", "clientURLs"}...])`` from the
    first of ``peerURLs`` that answers; ``JoinError`` naming every failure.

    With ``accept(members)``, an answer it refuses is kept only as a last
    resort while the other members are asked: a member that has not yet
    applied the change adding the new member lists it later than the one
    that answered the add (etcd takes the first answer and fails the start).
    """
    errors = []
    refused = None
    for url in peerURLs:
        try:
            d = agent.request(b"GET", url.encode("ascii") + b"/members")
            if reactor is not None:
                d.addTimeout(timeout, reactor)
            response = await d
            body = await readBody(response, MEMBERS_BODY_LIMIT)
            if response.code != 200:
                raise JoinError("HTTP %d" % (response.code,))
            header = response.headers.getRawHeaders(b"X-Etcd-Cluster-ID") or [b""]
            clusterID = parseID(header[0])
            if not clusterID:
                raise JoinError("no X-Etcd-Cluster-ID header")
            members = []
            for m in json.loads(body):
                members.append({"id": int(m["id"]), "name": m.get("name", ""),
                                "peerURLs": list(m.get("peerURLs") or []),
                                "clientURLs": list(m.get("clientURLs") or [])})
            if not members:
                raise JoinError("empty member list")
        except (defer.CancelledError, Exception) as e:
            errors.append("%s: %s" % (url, e))
            continue
        if accept is None or accept(members):
            return clusterID, members
        if refused is None:
            refused = clusterID, members
    if refused is not None:
        return refused
    raise JoinError("cannot get the member list: " + "; ".join(errors))
