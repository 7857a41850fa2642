# -*- test-case-name: raftmux.test.test_ckit_golden -*-
"""
Where ckit must match Go byte for byte, pinned by golden values.

``GOLDEN`` is what ``raftmux/test/go/ckitgolden`` printed, built offline
against Debian's sources: xxHash64 is Debian's ``cespare/xxhash`` 2.1.1
(ckit pins v2.3.0 of the same module; the algorithm is fixed by the XXH64
spec); the msgpack is Debian's go-msgpack 0.5.5 ``MsgpackHandle{}``.  ckit
pins go-msgpack v2.1.5, whose encoder we read: for a struct encoded as a
map it walks the fields sorted by encoded name (``sfiSort``), and with
``WriteExt`` false it writes strings as old-spec raw, exactly as 0.5.5
does, so the same bytes.  The hashes' owner lists come from Go code that
re-states ckit's ``internal/chash`` (ring, rendezvous, multi-probe) so that
Go's own uint64 arithmetic, ``sort.Search``, ``byte(t)`` truncation and
``strconv.AppendUint(.., 16)`` decide every detail our Python re-statement
has to agree with.

``test_goAgrees`` rebuilds the Go program and checks it still prints
``GOLDEN`` (skipped without Go or the Debian sources); the other tests
check our Python against ``GOLDEN`` and against xxHash's published test
vectors.
"""

import subprocess

from twisted.trial.unittest import SynchronousTestCase

from raftmux.ckit.chash import (
    KeyBuilder,
    Multiprobe,
    Rendezvous,
    Ring,
    ringTokens,
    secondKey,
    stringKey,
    xorshiftMult64,
)
from raftmux.ckit.messages import LocalState, StateMessage, decodeMessage
from raftmux.ckit.peer import PeerState
from raftmux.testing.gopeer import buildGoProgram

GOLDEN = {
    'xxh64:': '17241709254077376921',
    'xxh64:a': '15154266338359012955',
    'xxh64:abc': '4952883123889572249',
    'xxh64:some-key': '7399649081520410259',
    'xxh64:example-key': '6236200483676591104',
    'xxh64:node-a': '375925415828903691',
    'ring-tokens:node-a': '4463094017149013872,15528781576575175910,12833493606912594893',
    'ring-tokens:node-b:255-257,299': '8291861422411396214,16778539796060190668,3274469539404229879,15725484741132333620',
    'secondKey:0': '7148434200721666028',
    'xorshift:0': '0',
    'secondKey:1': '13237225503670494420',
    'xorshift:1': '5180492295206395165',
    'secondKey:255': '5218981750539285996',
    'xorshift:255': '8120638270249227712',
    'secondKey:18446744073709551615': '16857619606678500119',
    'xorshift:18446744073709551615': '17954947803125907456',
    'secondKey:7399649081520410259': '4787593739885965508',
    'xorshift:7399649081520410259': '4534612222999405445',
    'ring256:some-key': 'node-c,node-d,node-e',
    'ring512:some-key': 'node-c,node-a,node-d',
    'rendezvous:some-key': 'node-c,node-d,node-e',
    'multiprobe:some-key': 'node-e,node-c,node-b',
    'ring256:example-key': 'node-c,node-b,node-e',
    'ring512:example-key': 'node-c,node-e,node-b',
    'rendezvous:example-key': 'node-e,node-d,node-c',
    'multiprobe:example-key': 'node-b,node-a,node-d',
    'ring256:k1': 'node-e,node-c,node-d',
    'ring512:k1': 'node-e,node-c,node-a',
    'rendezvous:k1': 'node-d,node-b,node-e',
    'multiprobe:k1': 'node-a,node-d,node-e',
    'ring256:k2': 'node-c,node-b,node-e',
    'ring512:k2': 'node-c,node-b,node-e',
    'rendezvous:k2': 'node-b,node-c,node-d',
    'multiprobe:k2': 'node-c,node-b,node-a',
    'ring256:k3': 'node-e,node-c,node-a',
    'ring512:k3': 'node-b,node-c,node-e',
    'rendezvous:k3': 'node-d,node-c,node-a',
    'multiprobe:k3': 'node-c,node-b,node-a',
    'ring256:': 'node-e,node-a,node-c',
    'ring512:': 'node-b,node-d,node-c',
    'rendezvous:': 'node-d,node-a,node-e',
    'multiprobe:': 'node-d,node-e,node-c',
    'state': '12010183a84e6577537461746501a84e6f64654e616d65a66e6f64652d61a454696d6505',
    'state-zero': '12010183a84e6577537461746500a84e6f64654e616d65a0a454696d6500',
    'state-big': '12010183a84e6577537461746502a84e6f64654e616d65da0030612d6e6f64652d6e616d652d746861742d69732d6c6f6e6765722d7468616e2d7468697274792d6f6e652d6279746573a454696d65cf0000010000000000',
    'state-times': '12010183a84e6577537461746502a84e6f64654e616d65a16ea454696d65ccc8,12010183a84e6577537461746502a84e6f64654e616d65a16ea454696d65ce00011170,12010183a84e6577537461746502a84e6f64654e616d65a16ea454696d65cfffffffffffffffff',
    'localstate': '82ab43757272656e7454696d652aaa4e6f64655374617465739283a84e6577537461746501a84e6f64654e616d65a66e6f64652d61a454696d652883a84e6577537461746500a84e6f64654e616d65a66e6f64652d62a454696d6500',
    'localstate-empty': '82ab43757272656e7454696d6500aa4e6f646553746174657390',
}

#: XXH64 (seed 0) test vectors, as cespare/xxhash's own tests list them
XXH64_VECTORS = [
    (b"", 0xef46db3751d8e999),
    (b"a", 0xd24ec4f1a98c6e5b),
    (b"as", 0x1c330fb2d66be179),
    (b"asd", 0x631c37ce72a97393),
    (b"asdf", 0x415872f599cea71e),
    (b"Call me Ishmael. Some years ago--never mind how long precisely-", 0x02a2e85470d6fd96),
]

NODES = ["node-a", "node-b", "node-c", "node-d", "node-e"]
KEYS = ["some-key", "example-key", "k1", "k2", "k3", ""]
LONG = "a-node-name-that-is-longer-than-thirty-one-bytes"


def computed():
    """The same table, from our Python."""
    out = {}
    for s in ["", "a", "abc", "some-key", "example-key", "node-a"]:
        out["xxh64:" + s] = str(stringKey(s))
    out["ring-tokens:node-a"] = ",".join(map(str, ringTokens("node-a", 3)))
    tokens = ringTokens("node-b", 300)
    out["ring-tokens:node-b:255-257,299"] = ",".join(
        str(tokens[i]) for i in (255, 256, 257, 299))
    for k in (0, 1, 255, 2 ** 64 - 1, stringKey("some-key")):
        out["secondKey:%d" % k] = str(secondKey(k))
        out["xorshift:%d" % k] = str(xorshiftMult64(k))
    hashes = {"ring256": Ring(256), "ring512": Ring(512), "rendezvous": Rendezvous(),
              "multiprobe": Multiprobe()}
    for h in hashes.values():
        h.setNodes(NODES)
    for key in KEYS:
        for name, h in hashes.items():
            out["%s:%s" % (name, key)] = ",".join(h.get(stringKey(key), 3))
    out["state"] = StateMessage("node-a", PeerState.PARTICIPANT, 5).encode().hex()
    out["state-zero"] = StateMessage("", PeerState.VIEWER, 0).encode().hex()
    out["state-big"] = StateMessage(LONG, PeerState.TERMINATING, 1 << 40).encode().hex()
    out["state-times"] = ",".join(StateMessage("n", PeerState.TERMINATING, t).encode().hex()
                                  for t in (200, 70000, 2 ** 64 - 1))
    out["localstate"] = LocalState(42, (StateMessage("node-a", PeerState.PARTICIPANT, 40),
                                        StateMessage("node-b", PeerState.VIEWER, 0))).encode().hex()
    out["localstate-empty"] = LocalState(0, ()).encode().hex()
    return out


class GoldenTests(SynchronousTestCase):
    def test_goAgrees(self):
        """The Go program (Debian's xxhash and go-msgpack) still prints GOLDEN."""
        binary = buildGoProgram("ckitgolden", "test/go/ckitgolden")
        out = subprocess.run([binary], check=True, timeout=60, capture_output=True,
                             text=True).stdout
        printed = dict(line.split(" ", 1) for line in out.splitlines())
        self.assertEqual(printed, GOLDEN)

    def test_pythonAgrees(self):
        """Our xxHash inputs, hashes and message bytes are Go's, value for value."""
        ours = computed()
        self.assertEqual(set(ours), set(GOLDEN))
        for name in sorted(GOLDEN):
            self.assertEqual(ours[name], GOLDEN[name], name)

    def test_xxh64Vectors(self):
        """XXH64's published vectors, whole and fed in pieces through ``KeyBuilder``."""
        for data, want in XXH64_VECTORS:
            self.assertEqual(stringKey(data), want)
            for size in (1, 3, 7):
                builder = KeyBuilder()
                for i in range(0, len(data), size):
                    builder.write(data[i:i + size])
                self.assertEqual(builder.key(), want)
            builder.reset()
            self.assertEqual(builder.key(), 0xef46db3751d8e999)

    def test_goldenMessagesDecode(self):
        """Go's bytes decode to the values they encode, and encode back to Go's bytes."""
        message = decodeMessage(bytes.fromhex(GOLDEN["state-big"]))
        self.assertEqual(message, StateMessage(LONG, PeerState.TERMINATING, 1 << 40))
        for hexBytes in GOLDEN["state-times"].split(","):
            self.assertEqual(decodeMessage(bytes.fromhex(hexBytes)).encode().hex(), hexBytes)
        state = LocalState.decode(bytes.fromhex(GOLDEN["localstate"]))
        self.assertEqual(state.currentTime, 42)
        self.assertEqual([str(s) for s in state.nodeStates],
                         ["node-a @40: participant", "node-b @0: viewer"])
        self.assertEqual(state.encode().hex(), GOLDEN["localstate"])
