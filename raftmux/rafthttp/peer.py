# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
A peer (spec 5): its URL picker, status, two stream writers, two stream
readers, pipeline, snapshot sender and prober; and the routing of each
outgoing message to one of them.  A ``Remote`` is the pipeline only.
"""

from twisted.logger import Logger

from raftmux.rafthttp.inbox import Inbox
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE
from raftmux.rafthttp.pipeline import Pipeline
from raftmux.rafthttp.prober import Prober
from raftmux.rafthttp.snapshot import SnapshotSender
from raftmux.rafthttp.status import PeerStatus
from raftmux.rafthttp.stream import MESSAGE, MSGAPP, StreamReader, StreamWriter
from raftmux.rafthttp.urlpick import URLPicker
from raftmux.raftpb import MsgApp, MsgSnap

__all__ = ["Peer", "Remote", "pick", "PIPELINE", "STREAM_MESSAGE", "STREAM_MSGAPP"]

PIPELINE = "pipeline"
STREAM_MESSAGE = "stream Message"
STREAM_MSGAPP = "stream MsgApp v2"


def pick(messageType, msgappWorking, messageWorking):
    """etcd's ``peer.pick``: which channel a message type takes."""
    if messageType == MsgSnap:
        return PIPELINE
    if messageType == MsgApp and msgappWorking:
        return STREAM_MSGAPP
    if messageWorking:
        return STREAM_MESSAGE
    return PIPELINE


class _Member:
    """What a peer and a remote share: identity, URLs, status and metrics."""

    log = Logger()

    def __init__(self, transport, id, urls):
        self.transport = transport
        self.id = id
        self.picker = URLPicker(urls)
        self.status = PeerStatus(transport.id, id, transport.reactor)
        self.metrics = transport.metrics.forPeer(id)
        self.paused = False

    def update(self, urls):
        self.picker.update(urls)


class Remote(_Member):
    """A member we may only answer (spec 6 ``AddRemote``): a pipeline."""

    def __init__(self, transport, id, urls):
        _Member.__init__(self, transport, id, urls)
        self.pipeline = Pipeline(self)

    def send(self, message):
        if self.paused:
            return
        if not self.pipeline.send(message):
            self.metrics.droppedOut.inc()
            self.log.warn("dropped message type {type} to remote {peer:x}: pipeline full",
                          type=message.type, peer=self.id)

    def stop(self):
        self.pipeline.stop()


class Peer(_Member):
    """One member of the cluster: everything that talks to it."""

    def __init__(self, transport, id, urls):
        _Member.__init__(self, transport, id, urls)
        self.recv = Inbox(transport.raft, name="recv")
        self.prop = Inbox(transport.raft, name="prop")
        self.pipeline = Pipeline(self)
        self.snapshotSender = SnapshotSender(self)
        self.writers = {MESSAGE: StreamWriter(self, MESSAGE), MSGAPP: StreamWriter(self, MSGAPP)}
        self.readers = {MESSAGE: StreamReader(self, MESSAGE, transport.dialRetryInterval),
                        MSGAPP: StreamReader(self, MSGAPP, transport.dialRetryInterval)}
        self.prober = Prober(self, urls)

    def start(self):
        for reader in self.readers.values():
            reader.start()
        if self.transport.probing:
            self.prober.start()

    def channel(self, message):
        """The name of the channel ``message`` goes on now."""
        return pick(message.type, self.writers[MSGAPP].working, self.writers[MESSAGE].working)

    def send(self, message):
        """Route ``message``; a full channel drops it and tells raft."""
        if self.paused:
            return
        t = message.type
        if t == MsgApp and self.writers[MSGAPP].working:
            ok = self.writers[MSGAPP].send(message)
            name = STREAM_MSGAPP
        elif t != MsgSnap and self.writers[MESSAGE].working:
            ok = self.writers[MESSAGE].send(message)
            name = STREAM_MESSAGE
        else:
            ok = self.pipeline.send(message)
            name = PIPELINE
        if not ok:
            self.metrics.droppedOut.inc()
            self.log.warn("dropped message type {type} to {peer:x} on {name}: "
                          "buffer full or not working", type=t, peer=self.id, name=name)
            raft = self.transport.raft
            raft.reportUnreachable(message.to)
            if t == MsgSnap:
                raft.reportSnapshot(message.to, SNAPSHOT_FAILURE)

    def sendSnapshot(self, message, databaseFile):
        return self.snapshotSender.send(message, databaseFile)

    def update(self, urls):
        _Member.update(self, urls)
        self.prober.update(urls)

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def stop(self):
        self.prober.stop()
        for reader in self.readers.values():
            reader.stop()
        for writer in self.writers.values():
            writer.stop()
        self.pipeline.stop()
        self.snapshotSender.stop()
