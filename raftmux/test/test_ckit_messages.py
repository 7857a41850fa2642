# -*- test-case-name: raftmux.test.test_ckit_messages -*-
"""
ckit's Lamport clock, peers and gossip messages: ckit's own test cases
(``internal/lamport``, ``peer``, ``internal/messages``), round trips, and
the decoders fed random, truncated and oversized input (a ``MessageError``,
never another exception).
"""

import json

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.ckit.lamport import MASK64, LamportClock
from raftmux.ckit.messages import (
    LocalState,
    MessageError,
    MessageType,
    StateMessage,
    decodeMessage,
    encodeMessage,
    parseMessage,
)
from raftmux.ckit.peer import Peer, PeerState, parseStateName, stateName


class LamportTests(SynchronousTestCase):
    def test_nowTickObserve(self):
        """ckit's lamport_test cases."""
        self.assertEqual(LamportClock(0).now(), 0)
        self.assertEqual(LamportClock(15).now(), 15)
        self.assertEqual(LamportClock(0).tick(), 1)
        self.assertEqual(LamportClock(15).tick(), 16)
        for start, seen, expect in ((0, 0, 1), (15, 20, 21), (15, 5, 15), (15, 15, 16)):
            clock = LamportClock(start)
            clock.observe(seen)
            self.assertEqual(clock.now(), expect)

    def test_wrapsLikeGo(self):
        """uint64 arithmetic: the largest time moves the clock to 0, as in Go."""
        clock = LamportClock(3)
        clock.observe(MASK64)
        self.assertEqual(clock.now(), 0)
        self.assertEqual(LamportClock(MASK64).tick(), 0)


class PeerTests(SynchronousTestCase):
    def test_json(self):
        """ckit's JSON form, and back (peer_test's round trip)."""
        p = Peer("test-peer", "localhost", True, PeerState.PARTICIPANT)
        text = json.dumps(p.toJSON())
        self.assertEqual(json.loads(text), {"name": "test-peer", "addr": "localhost",
                                            "isSelf": True, "state": "participant"})
        self.assertEqual(Peer.fromJSON(json.loads(text)), p)

    def test_stateNames(self):
        self.assertEqual([stateName(s) for s in PeerState],
                         ["viewer", "participant", "terminating"])
        self.assertEqual(stateName(7), "unknown(7)")
        self.assertEqual(parseStateName("terminating"), PeerState.TERMINATING)
        self.assertRaises(ValueError, parseStateName, "leader")


class MessageTests(SynchronousTestCase):
    def test_roundTrip(self):
        m = StateMessage("node-a", PeerState.TERMINATING, 12)
        raw = m.encode()
        self.assertEqual(parseMessage(raw)[0], MessageType.STATE)
        self.assertEqual(decodeMessage(raw), m)
        self.assertEqual(str(m), "node-a @12: terminating")

    def test_invalid(self):
        """ckit's messages_test: its error texts, and no encoding of an invalid type."""
        self.assertRaises(ValueError, encodeMessage, MessageType.INVALID, b"")
        self.assertRaises(ValueError, encodeMessage, 254, b"")
        raw = bytearray(StateMessage("x", 1, 1).encode())
        raw[2] = 0
        self.assertEqual(str(self._error(raw)), "invalid message type 0")
        raw[2] = 150
        self.assertEqual(str(self._error(raw)), "invalid message type 150")
        raw[2] = 1
        raw[0], raw[1] = 0xDD, 0xFF
        self.assertEqual(str(self._error(raw)), "invalid magic header ddff")
        self.assertEqual(str(self._error(b"\x12\x01")), "payload too small for message")
        self.assertEqual(str(self._error(b"\x00\x12\x01")), "invalid magic header 12")

    def _error(self, raw):
        with self.assertRaises(MessageError) as caught:
            decodeMessage(bytes(raw))
        return caught.exception

    def test_unknownFieldsKept(self):
        """Fields a newer ckit adds survive a decode and come back after the known ones."""
        body = msgpack.packb({"Time": 3, "Zone": "eu", "NodeName": "n", "NewState": 1},
                             use_bin_type=False)
        m = decodeMessage(encodeMessage(MessageType.STATE, body))
        self.assertEqual(m, StateMessage("n", PeerState.PARTICIPANT, 3))
        again = msgpack.unpackb(m.encode()[3:], raw=False)
        self.assertEqual(list(again), ["NewState", "NodeName", "Time", "Zone"])
        self.assertEqual(again["Zone"], "eu")

    def test_lenientLikeGo(self):
        """nil fields are zero; an array-encoded struct follows declaration order; a newer state number is kept."""
        nil = encodeMessage(MessageType.STATE, msgpack.packb({"NodeName": None}))
        self.assertEqual(decodeMessage(nil), StateMessage("", PeerState.VIEWER, 0))
        array = encodeMessage(MessageType.STATE, msgpack.packb(["n", 2, 9]))
        self.assertEqual(decodeMessage(array), StateMessage("n", PeerState.TERMINATING, 9))
        newer = decodeMessage(StateMessage("n", 7, 1).encode())
        self.assertEqual(newer.newState, 7)
        trailing = StateMessage("n", 1, 1).encode() + b"\xc1garbage"
        self.assertEqual(decodeMessage(trailing), StateMessage("n", 1, 1))

    def test_wrongTypes(self):
        for body in ({"Time": -1}, {"Time": 1.5}, {"Time": "x"}, {"NodeName": 5},
                     {"NewState": True}, 7, {1: 2}):
            raw = encodeMessage(MessageType.STATE, msgpack.packb(body, use_bin_type=False))
            self.assertRaises(MessageError, decodeMessage, raw)

    def test_localStateRoundTrip(self):
        state = LocalState(9, (StateMessage("a", 1, 3), StateMessage("b", 0, 0)))
        self.assertEqual(LocalState.decode(state.encode()), state)
        self.assertEqual(LocalState.decode(msgpack.packb({"CurrentTime": 1})),
                         LocalState(1, ()))
        for bad in (msgpack.packb({"NodeStates": 3}), msgpack.packb({"NodeStates": [5]}),
                    b"", b"\x82"):
            self.assertRaises(MessageError, LocalState.decode, bad)

    @settings(max_examples=300, deadline=None)
    @given(name=st.text(max_size=80), state=st.integers(0, 2), time=st.integers(0, MASK64))
    def test_roundTripAny(self, name, state, time):
        m = StateMessage(name, PeerState(state), time)
        self.assertEqual(decodeMessage(m.encode()), m)
        self.assertEqual(decodeMessage(m.encode()).encode(), m.encode())

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=200))
    def test_randomInput(self, data):
        """Random bytes: a message or a MessageError, nothing else."""
        for decode in (decodeMessage, LocalState.decode):
            try:
                decode(data)
            except MessageError:
                pass

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_truncatedAndMutated(self, data):
        raw = bytearray(LocalState(5, (StateMessage("a", 1, 2), StateMessage("bb", 2, 7)))
                        .encode())
        cut = data.draw(st.integers(0, len(raw)))
        flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1),
                                             st.integers(0, 255)), max_size=3))
        for i, value in flips:
            raw[i] = value
        try:
            LocalState.decode(bytes(raw[:cut]))
        except MessageError:
            pass

    def test_oversizedDeclaredLengthRefused(self):
        """A declared string far past the data is refused without allocating it."""
        body = b"\x83\xa8NodeName\xdb\x7f\xff\xff\xff"
        self.assertRaises(MessageError, decodeMessage,
                          encodeMessage(MessageType.STATE, body))
