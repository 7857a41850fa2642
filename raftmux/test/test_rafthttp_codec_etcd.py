# -*- test-case-name: raftmux.test.test_rafthttp_codec_etcd -*-
"""
The codecs against a real etcd 3.4 on loopback: a fake member "p2" dials
etcd's two streams, decodes them with L{MessageDecoder} and
L{MsgAppV2Decoder}, answers with L{raftpb.encode}d replies over POST /raft,
and so lets etcd win an election and commit a put.  Every byte etcd sent
must come back out of our encoders unchanged.  Blocking sockets, no
reactor: this checks the sans-IO codecs only.  Skipped without etcd.
"""

import hashlib
import http.client
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from raftmux import raftpb
from raftmux.cluster import freePort
from raftmux.rafthttp.codec import (
    MessageDecoder,
    MsgAppV2Decoder,
    MsgAppV2Encoder,
    encodeMessage,
    isLinkHeartbeat,
)
from raftmux.raftpb import Message, encode


def memberID(url, token):
    """Spec 11.1, for a member with one peer URL, at bootstrap."""
    return struct.unpack(">Q", hashlib.sha1((url + token).encode()).digest()[:8])[0]


def clusterID(ids):
    """Spec 11.2."""
    data = b"".join(struct.pack(">Q", i) for i in sorted(ids))
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


class Dechunker:
    """Just enough HTTP/1.1 response parsing for a chunked stream body."""

    def __init__(self):
        self.head = None
        self._buf = b""

    def feed(self, data):
        self._buf += data
        if self.head is None:
            if b"\r\n\r\n" not in self._buf:
                return b""
            self.head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        out = b""
        while True:
            line, sep, rest = self._buf.partition(b"\r\n")
            if not sep:
                return out
            size = int(line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return out
            out += rest[:size]
            self._buf = rest[size + 2:]


class RealEtcdTests(SynchronousTestCase):
    def setUp(self):
        self.etcd = shutil.which("etcd")
        self.etcdctl = shutil.which("etcdctl")
        if not (self.etcd and self.etcdctl):
            raise SkipTest("etcd and etcdctl are not installed")
        self.peerPort, self.clientPort, fakePort = freePort(), freePort(), freePort()
        self.e1URL = "http://127.0.0.1:%d" % (self.peerPort,)
        self.p2URL = "http://127.0.0.1:%d" % (fakePort,)
        self.e1 = memberID(self.e1URL, "tok")
        self.p2 = memberID(self.p2URL, "tok")
        self.cid = clusterID([self.e1, self.p2])
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = open(os.path.join(self.dir, "etcd.log"), "w")
        self.addCleanup(self.log.close)
        clientURL = "http://127.0.0.1:%d" % (self.clientPort,)
        self.proc = subprocess.Popen(
            [self.etcd, "--name", "e1", "--data-dir", os.path.join(self.dir, "e1"),
             "--listen-peer-urls", self.e1URL, "--initial-advertise-peer-urls", self.e1URL,
             "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
             "--initial-cluster", "e1=%s,p2=%s" % (self.e1URL, self.p2URL),
             "--initial-cluster-token", "tok", "--initial-cluster-state", "new"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.proc.wait)
        self.addCleanup(self.proc.terminate)
        self.headers = {
            "X-Server-From": "%x" % (self.p2,), "X-Server-Version": "3.4.23",
            "X-Min-Cluster-Version": "3.0.0", "X-Etcd-Cluster-ID": "%x" % (self.cid,),
            "X-PeerURLs": self.p2URL}
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.peerPort), 0.2).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def dial(self, kind):
        s = socket.create_connection(("127.0.0.1", self.peerPort))
        self.addCleanup(s.close)
        lines = ["GET /raft/stream/%s/%x HTTP/1.1" % (kind, self.p2),
                 "Host: 127.0.0.1:%d" % (self.peerPort,), "X-Raft-To: %x" % (self.e1,)]
        lines += ["%s: %s" % kv for kv in self.headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s

    def post(self, m):
        setattr(m, "from", self.p2)
        c = http.client.HTTPConnection("127.0.0.1", self.peerPort, timeout=5)
        try:
            c.request("POST", "/raft", body=encode(m),
                      headers=dict(self.headers, **{"Content-Type": "application/protobuf"}))
            response = c.getresponse()
            response.read()
            return response.status
        finally:
            c.close()

    def ctl(self, *args):
        return subprocess.Popen(
            [self.etcdctl, "--endpoints", "http://127.0.0.1:%d" % (self.clientPort,)]
            + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def reply(self, m):
        """What a granting, acking follower answers (spec 12), or None."""
        if m.type == raftpb.MsgVote:
            return Message(type=raftpb.MsgVoteResp, to=self.e1, term=m.term)
        if m.type == raftpb.MsgApp:
            return Message(type=raftpb.MsgAppResp, to=self.e1, term=m.term,
                           index=m.index + len(m.entries))
        if m.type == raftpb.MsgHeartbeat and not isLinkHeartbeat(m):
            r = Message(type=raftpb.MsgHeartbeatResp, to=self.e1, term=m.term)
            if m.HasField("context"):
                r.context = m.context
            return r
        return None

    def test_streamsRoundTrip(self):
        """
        Through an election, a put and a linearizable get, both of etcd's
        streams decode, and re-encode to exactly the bytes etcd sent;
        etcd accepts our replies with 204.
        """
        streams = {self.dial("message"): ("message", Dechunker(), MessageDecoder()),
                   self.dial("msgapp"): ("msgapp", Dechunker(),
                                         MsgAppV2Decoder(localID=self.p2, remoteID=self.e1))}
        raw = {"message": b"", "msgapp": b""}
        got = {"message": [], "msgapp": []}
        statuses = set()
        put = get = None
        deadline = time.time() + 20
        while time.time() < deadline:
            if put is not None and get is None and put.poll() is not None:
                get = self.ctl("get", "k")
            if get is not None and get.poll() is not None and any(
                    m.HasField("context") for m in got["message"]):
                break
            for s in select.select(list(streams), [], [], 0.05)[0]:
                kind, dechunker, decoder = streams[s]
                data = s.recv(65536)
                self.assertTrue(data, "etcd closed the %s stream" % (kind,))
                body = dechunker.feed(data)
                raw[kind] += body
                for m in decoder.receiveData(body):
                    got[kind].append(m)
                    answer = self.reply(m)
                    if answer is not None:
                        statuses.add(self.post(answer))
                    if m.type == raftpb.MsgApp and put is None:
                        put = self.ctl("put", "k", "v")
        self.assertIsNotNone(get, "etcd never committed the put")
        self.assertEqual(put.communicate(timeout=5)[0].split(), [b"OK"])
        self.assertEqual(get.communicate(timeout=5)[0].split(), [b"k", b"v"])
        self.assertEqual(statuses, {204})

        # Both streams start with a 200 and no Content-Type (spec 1.7).
        for kind, dechunker, _ in streams.values():
            self.assertTrue(dechunker.head.startswith(b"HTTP/1.1 200 OK"), kind)
        # The message stream: the vote, heartbeats, a ReadIndex context.
        types = {m.type for m in got["message"]}
        self.assertIn(raftpb.MsgVote, types)
        self.assertIn(raftpb.MsgHeartbeat, types)
        ours = b"".join(encodeMessage(m) for m in got["message"])
        self.assertEqual(ours, raw["message"][:len(ours)])
        # The msgapp stream: a full App first, then AppEntries records.
        encoder = MsgAppV2Encoder()
        records = [encoder.encode(m) for m in got["msgapp"]]
        self.assertEqual(b"".join(records), raw["msgapp"][:sum(map(len, records))])
        kinds = [r[0] for r in records if r[0] != 0]
        self.assertEqual(kinds[0], 2)
        self.assertIn(1, kinds)
        self.assertTrue(any(e.Data for m in got["msgapp"] for e in m.entries))
