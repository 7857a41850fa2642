# -*- test-case-name: raftmux.test.test_mvcc_hash -*-
"""
HashKV: CRC-32C and etcd's ``HashByRev`` over the key space's records.
The golden values were answered by etcd 3.4.23 (``etcdctl endpoint
hashkv``) for the same requests; test_mvcc_etcd compares many more live.
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import KeySpace, Record, errors, hashing


class CRC32CTests(SynchronousTestCase):

    def test_vectors(self):
        """RFC 3720's check values, in the table code and through the wrapper."""
        for crc in (hashing._pureCRC32C, hashing.crc32c):
            self.assertEqual(crc(b"123456789"), 0xE3069283)
            self.assertEqual(crc(b""), 0)
            self.assertEqual(crc(bytes(32)), 0x8A9136AA)
            self.assertEqual(crc(b"\xff" * 32), 0x62A8AB43)
            self.assertEqual(crc(b"56789", crc(b"1234")), 0xE3069283)

    def test_revisionKey(self):
        """etcd's bolt key: main, '_', sub; a tombstone adds 't'."""
        self.assertEqual(hashing.revisionKey(Record(b"k", b"v", 2, 5, 1, 1, 0)),
                         bytes.fromhex("0000000000000005") + b"_" + bytes.fromhex("0000000000000001"))
        self.assertEqual(hashing.revisionKey(Record(b"k", b"", 0, 5, 0, 0, 0))[-1:], b"t")


class HashKVTests(SynchronousTestCase):

    def etcdScript(self):
        ks = KeySpace()
        ks.put(pb.PutRequest(key=b"a", value=b"1"))
        ks.put(pb.PutRequest(key=b"a", value=b"2", prev_kv=True))
        ks.put(pb.PutRequest(key=b"b", value=b"3"))
        ks.deleteRange(pb.DeleteRangeRequest(key=b"a", prev_kv=True))
        ks.compact(pb.CompactionRequest(revision=4))
        ks.leaseGrant(pb.LeaseGrantRequest(ID=7, TTL=1))
        ks.txn(pb.TxnRequest(
            compare=[pb.Compare(key=b"zz", target=pb.Compare.VERSION,
                                result=pb.Compare.EQUAL, version=0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=b"zz")),
                     pb.RequestOp(request_txn=pb.TxnRequest())]))
        return ks

    def test_etcdGolden(self):
        """What etcd 3.4.23 answered for the same requests."""
        ks = self.etcdScript()
        resp = ks.hashKV(0)
        self.assertEqual((resp.hash, resp.compact_revision, resp.header.revision),
                         (1549933734, 4, 6))
        self.assertEqual(ks.hashKV(5).hash, 2221601066)

    def test_errors(self):
        """At or below the compact revision, or above the current one."""
        ks = self.etcdScript()
        self.assertRaises(errors.ErrCompacted, ks.hashKV, 4)
        self.assertRaises(errors.ErrCompacted, ks.hashKV, 1)
        self.assertRaises(errors.ErrFutureRev, ks.hashKV, 7)

    def test_fresh(self):
        """Nothing stored: the hash of the bucket name; compact revision -1."""
        resp = KeySpace().hashKV()
        self.assertEqual((resp.hash, resp.compact_revision, resp.header.revision),
                         (hashing.crc32c(b"key"), -1, 1))

    def test_negativeRevision(self):
        """etcd hashes nothing for a negative revision (it is not 'now')."""
        ks = self.etcdScript()
        self.assertEqual(ks.hashKV(-1).hash, hashing.crc32c(b"key"))

    def test_dependsOnHistory(self):
        """Same live keys, different histories: different hashes."""
        a, b = KeySpace(), KeySpace()
        a.put(pb.PutRequest(key=b"k", value=b"v"))
        b.put(pb.PutRequest(key=b"k", value=b"x"))
        b.put(pb.PutRequest(key=b"k", value=b"v"))
        self.assertNotEqual(a.hashKV().hash, b.hashKV().hash)
        self.assertEqual(a.hashKV(2).hash, a.hashKV().hash)
