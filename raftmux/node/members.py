# -*- test-case-name: raftmux.test.test_node_kv -*-
"""
The member table: who is in the cluster, at which peer URLs, under which
name.  It changes only when a conf change is applied (its context is
etcd's member JSON, ``{"id":<decimal>,"peerURLs":[...],"name":"..."}``) or
a snapshot is restored, so every member derives the same table.
"""

import json

from raftmux.rafthttp import Member

__all__ = ["MemberTable", "MemberContext", "memberContext", "parseMemberContext",
           "parseConfChangeContext"]


def memberContext(id, peerURLs, name="", isLearner=False, isPromote=None):
    """
    The conf change context etcd writes for a member (spec 11.3): Go's
    JSON of ``membership.Member`` (the bootstrap entries, MemberUpdate), or,
    with ``isPromote`` True or False, of ``ConfigChangeContext`` (MemberAdd
    and MemberPromote), which adds ``isPromote``.
    """
    d = {"id": id, "peerURLs": list(peerURLs)}
    if isLearner:
        d["isLearner"] = True
    if name:
        d["name"] = name
    if isPromote is not None:
        d["isPromote"] = bool(isPromote)
    return json.dumps(d, separators=(",", ":")).encode()


class MemberContext:
    """A parsed conf change context: ``id``, ``peerURLs``, ``name``, ``isLearner``, ``isPromote``."""

    __slots__ = ("id", "peerURLs", "name", "isLearner", "isPromote")

    def __init__(self, id, peerURLs, name="", isLearner=False, isPromote=False):
        self.id = id
        self.peerURLs = peerURLs
        self.name = name
        self.isLearner = isLearner
        self.isPromote = isPromote


def parseConfChangeContext(context):
    """A L{MemberContext}, or None for a context that is not etcd's member JSON."""
    try:
        d = json.loads(context)
        urls = d.get("peerURLs")
        if urls is None:
            urls = []
        if not isinstance(urls, list):
            return None
        return MemberContext(int(d["id"]), [str(u) for u in urls], str(d.get("name") or ""),
                             d.get("isLearner") is True, d.get("isPromote") is True)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
        return None


def parseMemberContext(context):
    """``(id, peerURLs, name)`` from a conf change context, or None."""
    parsed = parseConfChangeContext(context)
    if parsed is None:
        return None
    return parsed.id, parsed.peerURLs, parsed.name


class MemberTable:
    """``members``: ID -> ``Member``; ``removed``: IDs removed for good."""

    def __init__(self):
        self.members = {}
        self.removed = set()

    def __contains__(self, id):
        return id in self.members

    def get(self, id):
        return self.members.get(id)

    def ids(self):
        return sorted(self.members)

    def add(self, id, peerURLs, name="", isLearner=False):
        member = self.members.get(id)
        if member is None:
            member = self.members[id] = Member(id, peerURLs, name, isLearner=isLearner)
        else:
            member.peerURLs = list(peerURLs) or member.peerURLs
            member.name = name or member.name
            member.isLearner = isLearner
        return member

    def remove(self, id):
        self.removed.add(id)
        return self.members.pop(id, None)

    def setAttributes(self, id, name, clientURLs):
        member = self.members.get(id)
        if member is not None:
            member.name = name or member.name
            member.clientURLs = list(clientURLs)

    def learners(self):
        return sum(1 for m in self.members.values() if m.isLearner)

    def findByPeerURLs(self, peerURLs):
        wanted = sorted(peerURLs)
        for member in self.members.values():
            if sorted(member.peerURLs) == wanted:
                return member
        return None

    # -- snapshots ------------------------------------------------------------

    def asJSON(self):
        return [{"id": m.id, "name": m.name, "peerURLs": m.peerURLs,
                 "clientURLs": m.clientURLs, "isLearner": m.isLearner}
                for m in (self.members[i] for i in self.ids())] + [
                    {"id": i, "removed": True} for i in sorted(self.removed)]

    def restore(self, items):
        self.members = {}
        self.removed = set()
        for d in items:
            if d.get("removed"):
                self.removed.add(int(d["id"]))
                continue
            m = self.add(int(d["id"]), d.get("peerURLs") or [], d.get("name", ""),
                         bool(d.get("isLearner")))
            m.clientURLs = list(d.get("clientURLs") or [])
