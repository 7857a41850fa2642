# -*- test-case-name: raftmux.test.test_tcp -*-
"""Nagle is turned off on TCP connections that carry multiplexed traffic."""

import socket

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from raftmux._tcp import setNoDelay
from raftmux.muxado import MuxadoServerFactory, connectSession


class SetNoDelayTests(SynchronousTestCase):

    def test_transportWithoutTheOption(self):
        self.assertFalse(setNoDelay(StringTransport()))

    def test_transportWithTheOption(self):
        calls = []

        class T:
            def setTcpNoDelay(self, enabled):
                calls.append(enabled)

        self.assertTrue(setNoDelay(T()))
        self.assertEqual(calls, [True])


class MuxadoNoDelayTests(TestCase):

    @inlineCallbacks
    def test_sessionsTurnNagleOff(self):
        factory = MuxadoServerFactory(Factory.forProtocol(Protocol))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        session = yield connectSession(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port))
        handle = session.transport.getHandle()
        self.assertEqual(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        closed = session.whenClosed()
        session.close()
        yield closed
