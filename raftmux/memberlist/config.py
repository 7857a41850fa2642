# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
``MemberlistConfig``: memberlist's ``Config`` knobs that change behaviour,
in seconds, with Go's ``DefaultLANConfig`` values as defaults;
``local()`` and ``wan()`` give ``DefaultLocalConfig`` and
``DefaultWANConfig``.  Encryption and the keyring, DNS lookups and the
CIDR allow list are not implemented (see docs/gossip.md).
"""

import dataclasses
import socket
from dataclasses import dataclass
from typing import Any

#: Go's MetaMaxSize
META_MAX_SIZE = 512
PROTOCOL_VERSION_MIN = 1
#: 3: TCP fallback pings, 4: indirect-ping nacks, 5: CRC on packets; we speak all of them
PROTOCOL_VERSION_MAX = 5


@dataclass
class MemberlistConfig:
    name: str = dataclasses.field(default_factory=socket.gethostname)
    bindAddr: str = "0.0.0.0"
    bindPort: int = 7946
    #: "" means: the bound address (or a private address when bound to 0.0.0.0)
    advertiseAddr: str = ""
    #: 0 means: the bound port
    advertisePort: int = 0
    protocolVersion: int = 2
    tcpTimeout: float = 10.0
    indirectChecks: int = 3
    retransmitMult: int = 4
    suspicionMult: int = 4
    suspicionMaxTimeoutMult: int = 6
    pushPullInterval: float = 30.0
    probeInterval: float = 1.0
    probeTimeout: float = 0.5
    disableTcpPings: bool = False
    awarenessMaxMultiplier: int = 8
    gossipNodes: int = 3
    gossipInterval: float = 0.2
    gossipToTheDeadTime: float = 30.0
    enableCompression: bool = True
    delegateProtocolVersion: int = 0
    delegateProtocolMin: int = 0
    delegateProtocolMax: int = 0
    udpBufferSize: int = 1400
    deadNodeReclaimTime: float = 0.0
    #: the most bytes one stream message may hold (Go's maxPushStateBytes)
    maxStreamBytes: int = 20 * 1024 * 1024

    def __post_init__(self):
        if not PROTOCOL_VERSION_MIN <= self.protocolVersion <= PROTOCOL_VERSION_MAX:
            raise ValueError("Protocol version %r must be in range [%d, %d]" % (
                self.protocolVersion, PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX))

    @classmethod
    def lan(cls, **overrides):
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides):
        values: dict[str, Any] = dict(
            tcpTimeout=30.0, suspicionMult=6, pushPullInterval=60.0, probeTimeout=3.0,
            probeInterval=5.0, gossipNodes=4, gossipInterval=0.5, gossipToTheDeadTime=60.0)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def local(cls, **overrides):
        values: dict[str, Any] = dict(
            tcpTimeout=1.0, indirectChecks=1, retransmitMult=2, suspicionMult=3,
            pushPullInterval=15.0, probeTimeout=0.2, probeInterval=1.0, gossipInterval=0.1,
            gossipToTheDeadTime=15.0)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def vsn(self):
        """The six version bytes of alive messages: pmin, pmax, pcur, dmin, dmax, dcur."""
        return bytes((PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX, self.protocolVersion,
                      self.delegateProtocolMin, self.delegateProtocolMax,
                      self.delegateProtocolVersion))
