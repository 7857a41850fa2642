"""
The raft consensus core: etcd-raft's semantics and message types
(``raftmux.raftpb``) as a sans-IO state machine, with durable storage and a
driver that joins it to ``raftmux.rafthttp.Transport``.
"""
