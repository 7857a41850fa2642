"""
A muxado stream server that behaves as our Go v1 test peer's server role
(``raftmux/test/go/muxado1peer``), so the Go client's scenarios run against
raftmux unchanged, in tests and in ``python -m raftmux.bench muxado``:

* a typed stream first gets 8 bytes, its type and priority (u32 BE each),
  then is echoed;
* an untyped stream is echoed until the peer's FIN, then closed, unless its
  first line is a command: ``OPEN n type pri`` (open n streams to the client,
  each greeted with ``hello from go`` and echoed; reply ``OK``), ``GOAWAY code
  [debug]``, ``CLOSE``, ``KILL``, ``RST`` (reply ``OK``, then close the stream
  so the client's next DATA is reset).
"""

from struct import Struct
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from raftmux._quiet import QuietFactory
from raftmux.muxado import MuxadoServerFactory

__all__ = ["GREETING", "MirrorStream", "mirrorServerFactory"]

GREETING = b"hello from go\n"
_COMMANDS = (b"OPEN ", b"GOAWAY", b"CLOSE", b"KILL", b"RST")
_MAX_COMMAND = 1024
_typeAndPriority = Struct(">II")


def _startsLikeCommand(data):
    return any(data[:len(word)] == word[:len(data)] for word in _COMMANDS)


@implementer(IHalfCloseableProtocol)
class Echo(Protocol):
    """
    Echo every byte; after the peer's FIN, finish and close our half.  The
    stream is its own producer, so while our echoes wait for the peer's
    window, we stop reading and the peer stops at ours: memory stays bounded.
    """

    transport: Any  # a muxado stream (streamType, priority, session, loseWriteConnection)
    greeting = b""

    def connectionMade(self):
        self.transport.registerProducer(self.transport, True)
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.transport.write(data)

    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


class Greeter(Echo):
    greeting = GREETING


class MirrorStream(Echo):
    """One stream of the mirror server (see the module docstring)."""

    def connectionMade(self):
        self.transport.registerProducer(self.transport, True)
        streamType = self.transport.streamType
        self._deciding = not streamType
        self._head = b""
        if streamType:
            self.transport.write(_typeAndPriority.pack(streamType, self.transport.priority))

    def dataReceived(self, data):
        if not self._deciding:
            self.transport.write(data)
            return
        head = self._head + data
        if not _startsLikeCommand(head):
            self._deciding = False
            self._head = b""
            self.transport.write(head)
            return
        line, newline, rest = head.partition(b"\n")
        if not newline:
            if len(head) > _MAX_COMMAND:
                self._deciding = False
                self._head = b""
                self.transport.write(head)
            else:
                self._head = head
            return
        self._deciding = False
        self._head = b""
        if self._command(line.decode("ascii", "replace").split()):
            self.transport.write(rest)

    def readConnectionLost(self):
        if self._head:
            self.transport.write(self._head)
            self._head = b""
        self.transport.loseConnection()

    def _command(self, words):
        """Run one command; True if the stream then goes on echoing."""
        session = self.transport.session
        verb = words[0] if words else ""
        if verb == "OPEN" and len(words) == 4:
            count, streamType, priority = (int(w) for w in words[1:])
            for _ in range(count):
                session.openStream(Greeter(), streamType=streamType or None,
                                   priority=priority or None)
            self.transport.write(b"OK\n")
            return True
        if verb == "GOAWAY" and len(words) >= 2:
            session.goAway(int(words[1]), " ".join(words[2:]).encode())
            return True
        if verb == "CLOSE":
            session.close()
            return False
        if verb == "KILL":
            session.transport.abortConnection()
            return False
        if verb == "RST":
            self.transport.write(b"OK\n")
            self.transport.loseConnection()
            return False
        self.transport.write(" ".join(words).encode() + b"\n")
        return True


def mirrorServerFactory(config=None, version=None, reactor=None):
    """A ``MuxadoServerFactory`` whose streams are ``MirrorStream``s."""
    return MuxadoServerFactory(QuietFactory.forProtocol(MirrorStream), config=config,
                               version=version, reactor=reactor)
