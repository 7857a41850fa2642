# -*- test-case-name: raftmux.test.test_node_state -*-
"""
The node's replicated state, sans-IO: etcd 3.4's MVCC key space, the
member table and what etcd keeps beside them (members' published
attributes, the cluster version), changed only by committed entries in
log order, as every member (raftmux or etcd) changes its own.

* ``applyNormal(index, data)``: one normal entry (``raftmux.node.entries``)
  applied; an L{Outcome} says what it was and what it gave (the key
  space's L{raftmux.mvcc.Applied}, or the key space's L{EtcdError}).
* ``validateConfChange`` / ``applyConfChange``: etcd's
  ``ValidateConfigurationChange`` and ``applyConfChange`` on the member
  table; a refused change is applied to raft as a no-op by the driver.
* ``snapshot()`` / ``restore(data)``: the whole state as bytes (the node's
  raft snapshot data)::

      b"RMNODE" 0x01  headLength u32  head (JSON)  KeySpace.snapshot()

  The head holds the member table (with removed IDs), attributes not yet
  matched to a member, and the cluster version.  A snapshot written by
  raftmux before the MVCC key space (``raftmux.node.kv``) is read as puts.
"""

import json
import struct
from collections import namedtuple

from raftmux.etcdpb import raft_internal_pb2
from raftmux.mvcc import KeySpace
from raftmux.mvcc.errors import (
    ErrMemberExist,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrPeerURLExist,
    ErrTooManyLearners,
    EtcdError,
)
from raftmux.mvcc.snapshot import SnapshotError
from raftmux.node import entries
from raftmux.node import kv as legacy
from raftmux.node.members import MemberTable, parseConfChangeContext
from raftmux.raftpb import (
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
)

__all__ = ["NodeState", "Outcome", "ForeignSnapshot", "SNAPSHOT_MAGIC", "MAX_LEARNERS",
           "ADDED", "PROMOTED", "UPDATED", "REMOVED"]

SNAPSHOT_MAGIC = b"RMNODE\x01"
_U32 = struct.Struct(">I")

#: etcd 3.4's maxLearners.
MAX_LEARNERS = 1

ADDED, PROMOTED, UPDATED, REMOVED = "added", "promoted", "updated", "removed"


class ForeignSnapshot(ValueError):
    """Snapshot data that is not raftmux's (an etcd member's v2 store)."""


class Outcome(namedtuple("Outcome", "kind request result error")):
    """
    What one normal entry gave: ``kind`` and ``request`` as
    ``raftmux.node.entries.EntryData``; ``result`` the key space's
    ``Applied`` (None when the request does not touch it or failed);
    ``error`` the ``EtcdError`` it failed with, or None.
    """

    @property
    def id(self):
        """The request ID its proposer waits on (0: none)."""
        return entries.requestID(self)


class NodeState:
    """
    ``minLeaseTTL`` as etcd derives it from the election timeout (every
    member of a cluster should agree on it, as etcd's must).
    """

    def __init__(self, minLeaseTTL=2):
        self.minLeaseTTL = minLeaseTTL
        self.keySpace = KeySpace(minLeaseTTL=minLeaseTTL)
        self.members = MemberTable()
        #: member ID -> (name, clientURLs) published before the member was known.
        self.pendingAttributes = {}
        #: the cluster version an etcd leader set (``PUT /0/version``), or None.
        self.clusterVersion = None
        #: entries that were none of etcd's kinds, or v2 requests we do not keep.
        self.skipped = 0

    # -- normal entries -------------------------------------------------------------

    def applyNormal(self, index, data):
        """Apply one normal entry's data at raft ``index``; an L{Outcome}."""
        decoded = entries.decodeEntry(data)
        kind, request = decoded
        if kind == entries.V3:
            self.keySpace.setConsistentIndex(index)
            try:
                result = self.keySpace.apply(request)
            except EtcdError as e:
                return Outcome(kind, request, None, e)
            return Outcome(kind, request, result, None)
        if kind == entries.V2:
            self._applyV2(request)
            return Outcome(kind, request, None, None)
        self.skipped += 1
        return Outcome(kind, None, None, None)

    def _applyV2(self, request):
        """etcd's ``applierV2store.Put`` for what a v3 member stores through v2."""
        if request.Method != "PUT":
            self.skipped += 1
            return
        memberID = entries.parseAttributesPath(request.Path)
        if memberID is not None:
            try:
                name, urls = entries.parseAttributes(request.Val)
            except ValueError:
                self.skipped += 1
                return
            if memberID in self.members:
                self.members.setAttributes(memberID, name, urls)
            elif memberID not in self.members.removed:
                self.pendingAttributes[memberID] = (name, urls)
            return
        if request.Path == entries.CLUSTER_VERSION_PATH:
            self.clusterVersion = request.Val
            return
        self.skipped += 1

    # -- conf changes -----------------------------------------------------------------

    def validateConfChange(self, changeType, nodeID, context):
        """
        etcd's ``ValidateConfigurationChange``: the ``EtcdError`` a change
        is refused with, or None.  ``context`` is the entry's raw context.
        """
        members = self.members
        if nodeID in members.removed:
            return ErrMemberNotFound()
        parsed = parseConfChangeContext(context) if context else None
        if changeType in (ConfChangeAddNode, ConfChangeAddLearnerNode):
            if self._isPromote(changeType, nodeID, parsed):
                if nodeID not in members:
                    return ErrMemberNotFound()
                if not members.get(nodeID).isLearner:
                    return ErrMemberNotLearner()
                return None
            if nodeID in members:
                return ErrMemberExist()
            urls = {u for m in members.members.values() for u in m.peerURLs}
            if parsed is not None and urls & set(parsed.peerURLs):
                return ErrPeerURLExist()
            learner = changeType == ConfChangeAddLearnerNode or (
                parsed is not None and parsed.isLearner)
            if learner and members.learners() + 1 > MAX_LEARNERS:
                return ErrTooManyLearners()
            return None
        if changeType == ConfChangeRemoveNode:
            return None if nodeID in members else ErrMemberNotFound()
        if changeType == ConfChangeUpdateNode:
            if nodeID not in members:
                return ErrMemberNotFound()
            urls = {u for m in members.members.values() if m.id != nodeID
                    for u in m.peerURLs}
            if parsed is not None and urls & set(parsed.peerURLs):
                return ErrPeerURLExist()
            return None
        return None

    def _isPromote(self, changeType, nodeID, parsed):
        if parsed is not None:
            return parsed.isPromote
        # A context-less AddNode of a known learner: raftmux's promote
        # before it wrote etcd's context.
        member = self.members.get(nodeID)
        return changeType == ConfChangeAddNode and member is not None and member.isLearner

    def applyConfChange(self, changeType, nodeID, context):
        """
        Change the member table as etcd does for a validated change;
        ``(what, member)`` with ``what`` one of ``ADDED``, ``PROMOTED``,
        ``UPDATED``, ``REMOVED`` (``member`` None for a removal).
        """
        members = self.members
        parsed = parseConfChangeContext(context) if context else None
        if changeType in (ConfChangeAddNode, ConfChangeAddLearnerNode):
            if self._isPromote(changeType, nodeID, parsed):
                member = members.get(nodeID)
                member.isLearner = False
                return PROMOTED, member
            learner = changeType == ConfChangeAddLearnerNode or (
                parsed is not None and parsed.isLearner)
            member = members.add(nodeID, parsed.peerURLs if parsed else [],
                                 parsed.name if parsed else "", learner)
            pending = self.pendingAttributes.pop(nodeID, None)
            if pending is not None:
                members.setAttributes(nodeID, *pending)
            return ADDED, member
        if changeType == ConfChangeRemoveNode:
            members.remove(nodeID)
            self.pendingAttributes.pop(nodeID, None)
            return REMOVED, None
        member = members.get(nodeID)
        if parsed is not None and parsed.peerURLs:
            member.peerURLs = list(parsed.peerURLs)
        return UPDATED, member

    # -- snapshots --------------------------------------------------------------------

    def snapshot(self):
        head = json.dumps({
            "members": self.members.asJSON(),
            "pendingAttributes": {"%x" % (k,): [n, u]
                                  for k, (n, u) in sorted(self.pendingAttributes.items())},
            "clusterVersion": self.clusterVersion,
            "skipped": self.skipped,
        }, separators=(",", ":"), sort_keys=True).encode()
        return b"".join((SNAPSHOT_MAGIC, _U32.pack(len(head)), head, self.keySpace.snapshot()))

    def restore(self, data):
        """
        Replace everything with a L{snapshot}.  ``ForeignSnapshot`` for
        data that is not raftmux's, ``SnapshotError`` for damaged data;
        either way nothing changed.
        """
        if data.startswith(legacy.SNAPSHOT_MAGIC):
            self._restoreLegacy(data)
            return
        if not data.startswith(SNAPSHOT_MAGIC):
            raise ForeignSnapshot("not a raftmux snapshot")
        pos = len(SNAPSHOT_MAGIC)
        try:
            (n,) = _U32.unpack_from(data, pos)
            head = json.loads(data[pos + 4:pos + 4 + n])
            members = MemberTable()
            members.restore(head["members"])
            pending = {int(k, 16): (str(v[0]), [str(u) for u in v[1]])
                       for k, v in head.get("pendingAttributes", {}).items()}
            clusterVersion = head.get("clusterVersion")
            skipped = int(head.get("skipped", 0))
        except (struct.error, ValueError, KeyError, TypeError, AttributeError,
                IndexError) as e:
            raise SnapshotError("damaged node snapshot head: %s" % (e,)) from None
        self.keySpace.restore(data[pos + 4 + n:])
        self.members = members
        self.pendingAttributes = pending
        self.clusterVersion = clusterVersion if isinstance(clusterVersion, str) else None
        self.skipped = skipped

    def _restoreLegacy(self, data):
        old = legacy.KVStateMachine()
        try:
            memberItems = old.restore(data)
        except legacy.CommandError as e:
            raise SnapshotError(str(e)) from None
        members = MemberTable()
        try:
            members.restore(memberItems or [])
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError("damaged members in a legacy snapshot: %s" % (e,)) from None
        keySpace = KeySpace(minLeaseTTL=self.minLeaseTTL)
        for key in sorted(old.data):
            request = raft_internal_pb2.InternalRaftRequest()
            request.put.key, request.put.value = key, old.data[key]
            keySpace.apply(request)
        self.keySpace.restore(keySpace.snapshot())
        self.members = members
        self.pendingAttributes = {}
        for memberID, attributes in old.attributes.items():
            if memberID in members:
                members.setAttributes(memberID, *attributes)
        self.clusterVersion = None
