# -*- test-case-name: raftmux.test.test_node_state -*-
"""
What a normal raft entry's data holds, as etcd 3.4 reads it
(``etcdserver/server.go`` ``applyEntryNormal``), sans-IO.

* An ``InternalRaftRequest`` (every v3 request: put, range, txn, leases,
  compaction, alarms, auth).  Its ``v2`` field, when set, is a v2 request.
* Failing that, a bare v2 ``etcdserverpb.Request``: what an etcd 3.4
  member writes to publish its attributes (``PUT
  /0/members/<id>/attributes``, JSON ``{"name", "clientURLs"}``) and the
  leader to set the cluster version (``PUT /0/version``).  etcd tries the
  first and falls back to the second; so do we, and the two never
  overlap: a v2 request's ``Method`` is its second field, which as an
  ``InternalRaftRequest`` field 2 does not parse.
* Entries of raftmux before the MVCC key space (``raftmux.node.kv``, data
  starting with ``RMKV``) are read as the v3 requests they amount to, so
  an older data directory replays into the key space.

``decodeEntry(data)`` gives an L{EntryData}; ``attributesRequest`` the v2
request a member publishes itself with, as etcd encodes it.
"""

import json
import re
from collections import namedtuple

from google.protobuf.message import DecodeError

from raftmux.etcdpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from raftmux.node import kv as legacy

__all__ = [
    "V3", "V2", "UNKNOWN", "EntryData", "decodeEntry", "attributesRequest",
    "attributesPath", "parseAttributesPath", "requestID", "CLUSTER_VERSION_PATH",
]

V3 = "v3"
V2 = "v2"
UNKNOWN = "unknown"

#: etcd's ``membership.StoreClusterVersionKey()``.
CLUSTER_VERSION_PATH = "/0/version"
_ATTRIBUTES = re.compile(r"^/0/members/([0-9a-fA-F]{1,16})/attributes$")


class EntryData(namedtuple("EntryData", "kind request")):
    """
    ``kind`` is ``V3`` (``request``: an ``InternalRaftRequest``), ``V2``
    (an ``etcdserverpb.Request``) or ``UNKNOWN`` (``request`` None: bytes
    that are none of these).
    """


def requestID(entry):
    """The ID a proposer waits on: etcd's ``ID``, else ``header.ID`` (v3)."""
    request = entry.request
    if entry.kind == V3:
        return request.ID or request.header.ID
    if entry.kind == V2:
        return request.ID
    return 0


def decodeEntry(data):
    """An L{EntryData} for a normal entry's (non-empty) data."""
    if data.startswith(legacy.MAGIC):
        return _legacy(data)
    try:
        request = raft_internal_pb2.InternalRaftRequest.FromString(data)
    except DecodeError:
        pass
    else:
        if request.HasField("v2"):
            return EntryData(V2, request.v2)
        return EntryData(V3, request)
    try:
        return EntryData(V2, etcdserver_pb2.Request.FromString(data))
    except DecodeError:
        return EntryData(UNKNOWN, None)


def _legacy(data):
    """A pre-MVCC raftmux command as the etcd request it amounts to."""
    try:
        command = legacy.decodeCommand(data)
    except legacy.CommandError:
        return EntryData(UNKNOWN, None)
    if command is None:
        return EntryData(UNKNOWN, None)
    op, fields = command
    request = raft_internal_pb2.InternalRaftRequest()
    if op == legacy.PUT:
        request.put.key, request.put.value = fields
    elif op == legacy.DELETE:
        request.delete_range.key = fields[0]
    elif op == legacy.CAS:
        key, prev, value = fields
        txn = request.txn
        txn.compare.add(key=key, target=rpc_pb2.Compare.VALUE,
                        result=rpc_pb2.Compare.EQUAL, value=prev)
        txn.success.add().request_put.CopyFrom(rpc_pb2.PutRequest(key=key, value=value))
    else:
        memberID, name, urls = fields
        return EntryData(V2, attributesRequest(0, memberID, name, urls))
    return EntryData(V3, request)


def attributesPath(memberID):
    """etcd's ``MemberAttributesStorePath``: the ID in hex, no leading zeros."""
    return "/0/members/%x/attributes" % (memberID,)


def parseAttributesPath(path):
    """The member ID a v2 attributes path names, or None."""
    match = _ATTRIBUTES.match(path)
    return int(match.group(1), 16) if match else None


def attributesRequest(id, memberID, name, clientURLs):
    """
    The v2 request etcd's ``publish`` proposes (bare, not inside an
    ``InternalRaftRequest``): Go's JSON of ``membership.Attributes``, whose
    fields are left out when empty.
    """
    attributes = {}
    if name:
        attributes["name"] = name
    if clientURLs:
        attributes["clientURLs"] = list(clientURLs)
    return etcdserver_pb2.Request(
        ID=id, Method="PUT", Path=attributesPath(memberID),
        Val=json.dumps(attributes, separators=(",", ":")))


def parseAttributes(value):
    """``(name, clientURLs)`` from an attributes JSON value; ValueError if damaged."""
    try:
        d = json.loads(value)
        name = d.get("name", "")
        urls = d.get("clientURLs") or []
    except (ValueError, AttributeError, RecursionError) as e:
        raise ValueError("bad attributes %r: %s" % (value[:200], e)) from None
    if not isinstance(name, str) or not isinstance(urls, list) or not all(
            isinstance(u, str) for u in urls):
        raise ValueError("bad attributes %r" % (value[:200],))
    return name, urls
