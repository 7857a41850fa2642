# -*- test-case-name: raftmux.test.test_bench_bareh2 -*-
"""
The h2 benchmark's bare client (``raftmux.bench._bareh2``), the measuring
stick for what ``H2Agent`` adds per GET: it gets our server's answers, many
at once on one connection, in a form ``readBody`` reads.
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import readBody

from raftmux.bench._bareh2 import BareH2Agent
from raftmux.test.h2helpers import TestServer


class BareClientTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def agent(self):
        server = TestServer()
        self.addCleanup(server.factory.shutdown)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            server.factory)
        self.addCleanup(port.stopListening)
        agent = yield BareH2Agent.connect(reactor, port.getHost().port)
        self.addCleanup(agent.close)
        return agent, b"http://127.0.0.1:%d" % (port.getHost().port,)

    @defer.inlineCallbacks
    def test_manyGETsOnOneConnection(self):
        agent, url = yield self.agent()

        @defer.inlineCallbacks
        def one(path):
            response = yield agent.request(b"GET", url + path)
            return response.code, (yield readBody(response))
        answers = yield defer.gatherResults([one(b"/hello") for _ in range(20)]
                                            + [one(b"/status/404")])
        self.assertEqual(answers[:20], [(200, b"hello from raftmux")] * 20)
        self.assertEqual(answers[20][0], 404)
        self.assertEqual(agent.client.pending, {})

    @defer.inlineCallbacks
    def test_getOnly(self):
        agent, url = yield self.agent()
        self.assertRaises(ValueError, agent.request, b"POST", url + b"/hello")
