# -*- test-case-name: raftmux.test.test_muxado_generation -*-
"""Telling muxado v1 from v2 by a client's first frame (spec 15.3)."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import frames, v1frames
from raftmux.muxado.generation import NEED_MORE, NEITHER, firstFrameVersion, likelyVersion

odd = st.integers(1, 0x3FFFFFFF).map(lambda n: 2 * n + 1)


class FirstFrameTests(SynchronousTestCase):
    def test_goVectors(self):
        # Go v1's heartbeat SYN and a bare SYN; Go v2's typed heartbeat opener.
        self.assertEqual(firstFrameVersion(bytes.fromhex("00080601 00000003 7fffffff fffffeff")), 1)
        self.assertEqual(firstFrameVersion(bytes.fromhex("00000001 00000003")), 1)
        self.assertEqual(firstFrameVersion(bytes.fromhex("00000412 00000003 ffffffff")), 2)

    @given(odd, st.one_of(st.none(), st.integers(0, 0x7FFFFFFF)),
           st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)))
    def test_everyV1OpeningIsV1(self, streamId, priority, streamType):
        frame = v1frames.encodeSyn(streamId, priority=priority, streamType=streamType)
        for n in range(8):
            self.assertIs(firstFrameVersion(frame[:n]), NEED_MORE)
        self.assertEqual(firstFrameVersion(frame), 1)

    @given(odd, st.binary(max_size=64), st.booleans())
    def test_everyV2OpeningIsV2(self, streamId, data, fin):
        frame = frames.encodeData(streamId, data, fin=fin, syn=True)
        self.assertEqual(firstFrameVersion(frame), 2)

    @given(st.binary(min_size=8, max_size=16))
    def test_decidesWithinEightBytesAndNeverRaises(self, data):
        self.assertIn(firstFrameVersion(data), (1, 2, NEITHER))
        self.assertIn(likelyVersion(data), (1, 2))

    def test_notOpenings(self):
        for data in (b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01",
                     frames.encodeData(2, b"x", syn=True),        # server parity
                     frames.encodeData(3, b"x"),                  # no SYN
                     bytes.fromhex("00000001 80000003"),          # R bit
                     bytes.fromhex("00000601 00000003")):         # v1 SYN, length != fields
            self.assertEqual(firstFrameVersion(data), NEITHER, data)
        self.assertEqual(firstFrameVersion(b"\x00\x00\x00\x12"), NEED_MORE)
