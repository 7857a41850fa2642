"""
raftmux: the peer side of clustered services, as Twisted protocols.

Parts: ``raftmux.muxado`` (stream multiplexing), ``raftmux.sniff`` (one port,
many protocols), ``raftmux.rafthttp`` (etcd v3.4 raft transport),
``raftmux.gossip`` (ckit's HTTP/2 gossip transport) and ``raftmux.raft``.
"""

__version__ = "0.1.0"
