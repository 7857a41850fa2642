# -*- test-case-name: raftmux.test.test_ckit_messages -*-
"""
ckit's peers: ``PeerState`` (viewer, participant, terminating: who may own
keys) and ``Peer`` (a member as ckit shows it: name, ``host:port``, whether
it is this node, its state), with ckit's JSON form.
"""

from dataclasses import dataclass
from enum import IntEnum


class PeerState(IntEnum):
    #: the initial state; never an owner of keys
    VIEWER = 0
    #: owner for reads and writes
    PARTICIPANT = 1
    #: shutting down: still an owner for reads, no longer for writes
    TERMINATING = 2

    def __str__(self):
        return self.name.lower()


def stateName(state):
    """ckit's text for a state; a value no ckit knows (a newer peer's) is shown by number."""
    try:
        return str(PeerState(state))
    except ValueError:
        return "unknown(%d)" % (state,)


def parseStateName(text):
    for state in PeerState:
        if str(state) == text:
            return state
    raise ValueError("unknown peer state %r" % (text,))


def asState(value):
    """A known ``PeerState``, or the plain integer a newer ckit may have sent."""
    try:
        return PeerState(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class Peer:
    name: str
    addr: str
    isSelf: bool
    state: int

    def __str__(self):
        return self.name

    def toJSON(self):
        """ckit's JSON object: ``{"name", "addr", "isSelf", "state"}``."""
        return {"name": self.name, "addr": self.addr, "isSelf": self.isSelf,
                "state": stateName(self.state)}

    @classmethod
    def fromJSON(cls, obj):
        return cls(obj["name"], obj["addr"], bool(obj["isSelf"]), parseStateName(obj["state"]))
