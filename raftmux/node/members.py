# -*- test-case-name: raftmux.test.test_node_config -*-
"""
The member table: who is in the cluster, at which peer URLs, under which
name.  It changes only when a conf change is applied (its context is
etcd's member JSON, ``{"id":<decimal>,"peerURLs":[...],"name":"..."}``) or
a snapshot is restored, so every member derives the same table.
"""

import json

from raftmux.rafthttp import Member

__all__ = ["MemberTable", "memberContext", "parseMemberContext"]


def memberContext(id, peerURLs, name=""):
    """The conf change context etcd writes for a member (spec 11.3)."""
    d = {"id": id, "peerURLs": list(peerURLs)}
    if name:
        d["name"] = name
    return json.dumps(d, separators=(",", ":")).encode()


def parseMemberContext(context):
    """``(id, peerURLs, name)`` from a conf change context, or None."""
    try:
        d = json.loads(context)
        return int(d["id"]), [str(u) for u in d.get("peerURLs") or ()], str(d.get("name", ""))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


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
