"""
Fuzz targets for the MVCC key space: restoring a snapshot, and applying
etcd's raft payload (``InternalRaftRequest``) as the log would hand it over.
"""

import zlib

from raftmux.etcdpb import raft_internal_pb2
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.fuzz import target
from raftmux.fuzz._support import check, split
from raftmux.mvcc import KeySpace, SnapshotError
from raftmux.mvcc.errors import EtcdError
from raftmux.raftpb import DecodeError


def busy():
    """A key space with history, a lease, a tombstone and a compaction (as the tests build)."""
    ks = KeySpace()
    ks.leaseGrant(pb.LeaseGrantRequest(ID=5, TTL=100))
    ks.put(pb.PutRequest(key=b"a", value=b"1"))
    ks.put(pb.PutRequest(key=b"a", value=b"2", lease=5))
    ks.put(pb.PutRequest(key=b"b", value=b"\x00" * 10))
    ks.deleteRange(pb.DeleteRangeRequest(key=b"b"))
    ks.put(pb.PutRequest(key=b"c"))
    ks.compact(pb.CompactionRequest(revision=4))
    ks.leaseCheckpoint(pb.LeaseCheckpointRequest(
        checkpoints=[pb.LeaseCheckpoint(ID=5, remaining_TTL=9)]))
    ks.setConsistentIndex(77)
    return ks


def _use(ks):
    """A restored or changed key space must still answer and change (etcd errors allowed)."""
    ks.range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"))
    ks.hashKV()
    ks.eventsSince(b"\x00", b"\x00", max(ks.compactRevision + 1, 1), maxEvents=100)
    for request in (pb.PutRequest(key=b"a", value=b"z"), pb.DeleteRangeRequest(key=b"c")):
        try:
            if isinstance(request, pb.PutRequest):
                ks.put(request)
            else:
                ks.deleteRange(request)
        except EtcdError:
            pass
    try:
        ks.compact(pb.CompactionRequest(revision=ks.revision))
    except EtcdError:
        pass
    data = ks.snapshot()
    other = KeySpace()
    other.restore(data)
    check(other.snapshot() == data, "snapshot -> restore -> snapshot changed the bytes")


@target("mvcc-snapshot", """
    KeySpace.restore of a snapshot (the CRC fixed up or not, by the control
    byte): only SnapshotError, and then the state is unchanged; a restored
    key space re-snapshots to the same bytes, and still serves range,
    hashKV, watch history, put, delete and compact.""",
        seeds=lambda: [b"\x00" + busy().snapshot()[:-4], b"\x01" + busy().snapshot(),
                       b"\x00" + KeySpace().snapshot()[:-4]])
def mvccSnapshot(data):
    control, body = split(data)
    if not control & 1:
        body = body + zlib.crc32(body).to_bytes(4, "big")
    ks = busy()
    before = ks.snapshot()
    try:
        ks.restore(body)
    except SnapshotError:
        check(ks.snapshot() == before, "a refused snapshot changed the state")
        return
    check(ks.snapshot() == body, "restore -> snapshot changed the bytes")
    _use(ks)


def _requests():
    r = raft_internal_pb2.InternalRaftRequest
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, result=pb.Compare.EQUAL,
                            value=b"2")],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"t", value=b"1"))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a"))])
    return [
        r(put=pb.PutRequest(key=b"k", value=b"v", prev_kv=True)),
        r(range=pb.RangeRequest(key=b"a", range_end=b"z", revision=3)),
        r(delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"\x00", prev_kv=True)),
        r(txn=txn),
        r(compaction=pb.CompactionRequest(revision=5)),
        r(lease_grant=pb.LeaseGrantRequest(ID=9, TTL=60)),
        r(lease_revoke=pb.LeaseRevokeRequest(ID=5)),
        r(lease_checkpoint=pb.LeaseCheckpointRequest(
            checkpoints=[pb.LeaseCheckpoint(ID=5, remaining_TTL=3)])),
    ]


@target("mvcc-apply", """
    etcd's InternalRaftRequest parsed (only DecodeError) and applied to a
    key space with history: only etcd's own errors (EtcdError); the state
    stays usable and snapshots round-trip.""",
        seeds=lambda: [r.SerializeToString() for r in _requests()], maxLen=2048)
def mvccApply(data):
    try:
        request = raft_internal_pb2.InternalRaftRequest.FromString(data)
    except DecodeError:
        return
    ks = busy()
    try:
        ks.apply(request)
    except EtcdError:
        pass
    _use(ks)
