# -*- test-case-name: raftmux.test.test_mvcc_keyspace -*-
"""
One stored revision of one key, and the watch event a change makes.

A L{Record} is what etcd keeps in its ``key`` bucket under the revision
``(modRevision, sub)``: a key's value with its create revision, version
and lease, or a tombstone (``createRevision == 0``, the mark of a
delete).  Records are immutable once written and shared between a key's
history, the revision log and the events handed to watchers, so nothing
is copied per reader.
"""

from raftmux.etcdpb import kv_pb2

__all__ = ["Record", "Event", "PUT", "DELETE"]

PUT = kv_pb2.Event.PUT
DELETE = kv_pb2.Event.DELETE


class Record:
    """
    ``key``, ``value`` (bytes); ``createRevision``, ``modRevision``,
    ``version``, ``lease`` as in ``mvccpb.KeyValue``; ``sub`` is the
    change's position within its main revision.  A tombstone has
    ``createRevision == version == lease == 0`` and an empty value.
    """

    __slots__ = ("key", "value", "createRevision", "modRevision", "sub",
                 "version", "lease")

    def __init__(self, key, value, createRevision, modRevision, sub, version, lease):
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.sub = sub
        self.version = version
        self.lease = lease

    @property
    def isTombstone(self):
        return self.createRevision == 0

    def toProto(self, keysOnly=False):
        """
        This record as ``mvccpb.KeyValue``.  A tombstone gives what etcd
        puts in a DELETE event: the key and the revision of the delete.
        """
        return kv_pb2.KeyValue(
            key=self.key, create_revision=self.createRevision,
            mod_revision=self.modRevision, version=self.version,
            value=b"" if keysOnly else self.value, lease=self.lease)

    def fill(self, kv, keysOnly=False):
        """Set the fields of ``kv`` (an ``mvccpb.KeyValue``) from this record."""
        kv.key = self.key
        kv.create_revision = self.createRevision
        kv.mod_revision = self.modRevision
        kv.version = self.version
        if not keysOnly:
            kv.value = self.value
        kv.lease = self.lease

    def stored(self):
        """
        The ``mvccpb.KeyValue`` etcd stores for this revision: a tombstone
        is stored as its key alone.
        """
        if self.createRevision == 0:
            return kv_pb2.KeyValue(key=self.key)
        return self.toProto()

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        return (self.key, self.value, self.createRevision, self.modRevision,
                self.sub, self.version, self.lease) == (
            other.key, other.value, other.createRevision, other.modRevision,
            other.sub, other.version, other.lease)

    def __hash__(self):
        return hash((self.key, self.modRevision, self.sub))

    def __repr__(self):
        if self.createRevision == 0:
            return "<Record %r deleted at (%d, %d)>" % (self.key, self.modRevision, self.sub)
        return "<Record %r=%r at (%d, %d) create=%d version=%d lease=%d>" % (
            self.key, self.value, self.modRevision, self.sub,
            self.createRevision, self.version, self.lease)


class Event:
    """
    A change to one key, for watchers: ``type`` (``PUT`` or ``DELETE``),
    ``kv`` (the L{Record} written; a tombstone for a delete) and
    ``prevKv`` (the key's record just before this revision, or None).

    ``prevKv`` is what etcd's watch server looks up at ``modRevision - 1``
    when a watcher asked for it, and like etcd it is None for a PUT that
    creates the key (version 1).
    """

    __slots__ = ("type", "kv", "prevKv")

    def __init__(self, type, kv, prevKv=None):
        self.type = type
        self.kv = kv
        self.prevKv = prevKv

    @property
    def key(self):
        return self.kv.key

    @property
    def revision(self):
        return self.kv.modRevision

    def toProto(self, prevKv=False):
        """This event as ``mvccpb.Event``, with ``prev_kv`` only if asked."""
        event = kv_pb2.Event(type=self.type)
        event.kv.SetInParent()
        self.kv.fill(event.kv)
        if prevKv and self.prevKv is not None:
            self.prevKv.fill(event.prev_kv)
        return event

    def __eq__(self, other):
        if not isinstance(other, Event):
            return NotImplemented
        return (self.type, self.kv, self.prevKv) == (other.type, other.kv, other.prevKv)

    def __hash__(self):
        return hash((self.type, self.kv))

    def __repr__(self):
        return "<Event %s %r prev=%r>" % (
            "PUT" if self.type == PUT else "DELETE", self.kv, self.prevKv)
