# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
The chaos harness's parts without root: the network plan (commands and
iptables scripts, cleanup of stale namespaces), the fault schedule and its
execution against fakes on a Clock, the delay relay (its delay line, on
loopback, and as a child process), the workload's handling of answers,
failures and timeouts, the clients' reading of each member's answers
(and the raftmux client against real in-process nodes), and the report.
"""

import io
import json
import os
import random
import sys
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, protocol, reactor
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from raftmux.chaos import report
from raftmux.chaos.checker import LINEARIZABLE, check
from raftmux.chaos.history import CAS, FAIL, INFO, OK, READ, WRITE, History, Op
from raftmux.chaos.nemesis import KINDS, Fault, Nemesis, partitionCuts, plan
from raftmux.chaos.net import LOSS_CHAIN, PARTITION_CHAIN, Network, NetworkError, restoreScript
from raftmux.chaos.relay import DelayLine, Relay, RelayControl, RelayProcess
from raftmux.chaos.targets import (
    EtcdClient,
    Failed,
    HTTPClient,
    Indeterminate,
    IRegisterClient,
    RaftmuxClient,
)
from raftmux.chaos.workload import Workload
from raftmux.cluster import childEnvironment, freePort

NAMES = ["n1", "n2", "n3"]


class _FakeIP:
    """``ip``/``iptables`` as a dict of namespaces, for ``Network(run=...)``."""

    def __init__(self, namespaces=(), fail=None, routes=""):
        self.namespaces = set(namespaces)
        self.hostLink = False
        self.calls = []
        self.fail = fail
        self.routes = routes

    def __call__(self, argv, input=None):
        self.calls.append(argv)
        if self.fail and self.fail in " ".join(argv):
            return 2, "RTNETLINK answers: File exists"
        if argv[:3] == ["ip", "netns", "list"]:
            return 0, "".join("%s (id: %d)\n" % (n, i) for i, n in enumerate(self.namespaces))
        if argv[:3] == ["ip", "netns", "add"]:
            self.namespaces.add(argv[3])
        elif argv[:3] == ["ip", "netns", "del"]:
            self.namespaces.discard(argv[3])
        elif argv[:3] == ["ip", "netns", "pids"]:
            return 0, ""
        elif argv[:3] == ["ip", "-4", "route"]:
            return 0, self.routes
        elif argv[:3] == ["ip", "link", "add"] and "rmxc-host" in argv:
            self.hostLink = True
        elif argv[:3] == ["ip", "link", "del"]:
            self.hostLink = False
        elif argv[:3] == ["ip", "link", "show"]:
            return (0, "up") if self.hostLink else (1, "does not exist")
        return 0, ""


class NetworkTests(SynchronousTestCase):

    def test_addresses(self):
        net = Network(NAMES)
        self.assertEqual([net.memberIP(n) for n in NAMES], ["10.77.0.11", "10.77.0.12",
                                                            "10.77.0.13"])
        self.assertEqual(net.relayIP("n2"), "10.77.0.102")
        self.assertEqual((net.namespace("n3"), net.hub, net.hostIP),
                         ("rmxc-n3", "rmxc-hub", "10.77.0.254"))

    def test_setUpBuildsEveryNamespace(self):
        fake = _FakeIP()
        net = Network(NAMES, run=fake)
        net.setUp()
        self.assertEqual(fake.namespaces, {"rmxc-hub", "rmxc-n1", "rmxc-n2", "rmxc-n3"})
        joined = [" ".join(c) for c in fake.calls]
        self.assertIn("ip -n rmxc-n2 addr add 10.77.0.12/24 dev eth0", joined)
        self.assertIn("ip -n rmxc-hub addr add 10.77.0.102/24 dev br0", joined)
        self.assertIn("ip addr add 10.77.0.254/24 dev rmxc-host", joined)
        self.assertIn("ip netns exec rmxc-n1 iptables -A INPUT -j %s" % (PARTITION_CHAIN,),
                      joined)
        self.assertTrue(fake.hostLink)
        self.assertEqual(sorted(net.tearDown()), ["rmxc-hub", "rmxc-n1", "rmxc-n2", "rmxc-n3"])
        self.assertEqual((fake.namespaces, fake.hostLink), (set(), False))

    def test_staleNamespacesRemovedFirst(self):
        """A killed run's namespaces (our prefix only) go before a new run begins."""
        fake = _FakeIP({"rmxc-n7", "rmxc-hub", "someone-else"})
        Network(NAMES, run=fake).setUp()
        self.assertIn(["ip", "netns", "del", "rmxc-n7"], fake.calls)
        self.assertIn("someone-else", fake.namespaces)
        self.assertNotIn("rmxc-n7", fake.namespaces)

    def test_failedSetUpCleansUp(self):
        fake = _FakeIP(fail="rmxc-n2 link set eth0")
        net = Network(NAMES, run=fake)
        error = self.assertRaises(NetworkError, net.setUp)
        self.assertIn("File exists", str(error))
        self.assertEqual(fake.namespaces, set())

    def test_subnetInUseRefused(self):
        fake = _FakeIP(routes="10.77.0.0/24 dev docker7 scope link\n")
        error = self.assertRaises(NetworkError, Network(NAMES, run=fake).setUp)
        self.assertIn("already routes", str(error))
        self.assertEqual(fake.namespaces, set())

    def test_partitionScripts(self):
        """A cut pair drops each other's own and relay addresses; others are healed."""
        scripts = Network(NAMES).partitionScripts({("n1", "n2")})
        self.assertEqual(scripts["rmxc-n1"], restoreScript(PARTITION_CHAIN, [
            "-s 10.77.0.12 -j DROP", "-s 10.77.0.102 -j DROP"]))
        self.assertEqual(scripts["rmxc-n2"], restoreScript(PARTITION_CHAIN, [
            "-s 10.77.0.11 -j DROP", "-s 10.77.0.101 -j DROP"]))
        self.assertEqual(scripts["rmxc-n3"], "*filter\n-F %s\nCOMMIT\n" % (PARTITION_CHAIN,))
        healed = Network(NAMES).partitionScripts(())
        self.assertTrue(all("DROP" not in s for s in healed.values()))

    def test_lossScripts(self):
        scripts = Network(NAMES).lossScripts(0.2)
        self.assertEqual(scripts["rmxc-n1"].count("--probability 0.2000 -j DROP"), 4)
        self.assertNotIn("10.77.0.254", scripts["rmxc-n1"])
        self.assertNotIn("10.77.0.11 ", scripts["rmxc-n1"])
        self.assertIn("-F %s" % (LOSS_CHAIN,), Network(NAMES).lossScripts(0)["rmxc-n2"])

    def test_inNamespace(self):
        argv = Network(NAMES).inNamespace("n2", ["etcd", "--name", "n2"])
        self.assertEqual(argv[1:], ["netns", "exec", "rmxc-n2", "etcd", "--name", "n2"])
        self.assertEqual(Network(NAMES).inNamespace(None, ["x"])[3], "rmxc-hub")


class PlanTests(SynchronousTestCase):

    @given(st.integers(0, 2**32), st.floats(5, 600), st.lists(st.sampled_from(KINDS),
                                                             min_size=1, unique=True))
    def test_schedule(self, seed, duration, kinds):
        """
        Faults from the seed alone, of the chosen kinds, one at a time,
        none in the warm-up or the final quiet spell.
        """
        faults = plan(random.Random(seed), NAMES, duration, kinds)
        again = plan(random.Random(seed), NAMES, duration, kinds)
        self.assertEqual([f.asJSON() for f in faults], [f.asJSON() for f in again])
        end = 0.0
        for f in faults:
            self.assertIn(f.kind, kinds)
            self.assertGreaterEqual(f.start, max(2.0, end))
            self.assertLessEqual(f.start + f.duration, duration - 3.0 + 1e-9)
            self.assertGreaterEqual(f.duration, 3.0)
            end = f.start + f.duration
            self.assertEqual(sorted(f.order), NAMES)

    def test_noKindsNoFaults(self):
        self.assertEqual(plan(random.Random(1), NAMES, 100, []), [])

    def test_partitionCuts(self):
        cuts, sides = partitionCuts("partition-leader", ["n2", "n3", "n1"], leader="n3")
        self.assertEqual(cuts, {("n1", "n3"), ("n2", "n3")})
        self.assertEqual(sides, [["n3"], ["n2", "n1"]])
        five = ["a", "b", "c", "d", "e"]
        cuts, sides = partitionCuts("partition-halves", five)
        self.assertEqual(sides, [["a", "b"], ["c", "d", "e"]])
        self.assertEqual(len(cuts), 6)
        cuts, sides = partitionCuts("partition-bridge", five)
        self.assertEqual(sides, [["a", "b"], ["c"], ["d", "e"]])
        self.assertEqual(cuts, {("a", "d"), ("a", "e"), ("b", "d"), ("b", "e")})
        cuts, sides = partitionCuts("partition-bridge", ["x", "y", "z"])
        self.assertEqual(cuts, {("x", "z")})


class _FakeTarget:
    def __init__(self, leader="n2"):
        self.current = leader
        self.calls = []

    async def leader(self):
        return self.current

    def kill(self, name):
        self.calls.append(("kill", name))
        return defer.succeed(None)

    def restart(self, name):
        self.calls.append(("restart", name))

    def signal(self, name, number):
        self.calls.append(("signal", name, number))


class _FakeRelay:
    def __init__(self):
        self.delays = []

    def setDelay(self, ms, jitter=0):
        self.delays.append((ms, jitter))
        return defer.succeed("ok")


class NemesisTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.scripts = []
        self.target = _FakeTarget()
        self.relay = _FakeRelay()
        self.history = History()

        def run(argv, input=None):
            self.scripts.append((argv[3], input))
            return defer.succeed((0, ""))
        self.nemesis = Nemesis(self.clock, Network(NAMES), self.target, self.relay,
                               self.history, self.clock.seconds, random.Random(0), run=run)

    def runFaults(self, faults, until):
        d = defer.ensureDeferred(self.nemesis.execute(faults))
        for _ in range(int(until * 10)):
            self.clock.advance(0.1)
        self.successResultOf(d)

    def test_everyKind(self):
        import signal
        faults = [Fault("partition-leader", 1, 2, order=NAMES),
                  Fault("pause", 4, 1, node="leader"),
                  Fault("kill", 6, 1, node="n3"),
                  Fault("loss", 8, 1, amount=0.3),
                  Fault("delay", 10, 1, amount=100)]
        self.runFaults(faults, 12)
        self.assertEqual([(e.kind, e.f) for e in self.history.events], [
            (k, f) for k in ("partition-leader", "pause", "kill", "loss", "delay")
            for f in ("start", "stop")])
        starts = [e.time for e in self.history.events if e.f == "start"]
        for began, planned in zip(starts, [1, 4, 6, 8, 10], strict=True):
            self.assertLess(abs(began - planned), 0.15)
        self.assertEqual(self.history.events[0].detail, {"sides": [["n2"], ["n1", "n3"]]})
        cut = dict(self.scripts[:3])
        self.assertIn("-s 10.77.0.12 -j DROP", cut["rmxc-n1"])
        self.assertNotIn("DROP", dict(self.scripts[3:6])["rmxc-n1"])
        self.assertEqual(self.target.calls, [
            ("signal", "n2", signal.SIGSTOP), ("signal", "n2", signal.SIGCONT),
            ("kill", "n3"), ("restart", "n3")])
        self.assertIn("--probability 0.3000", dict(self.scripts[6:9])["rmxc-n2"])
        self.assertEqual(self.relay.delays, [(100, 50.0), (0, 0)])

    def test_healAll(self):
        """Cut short in the middle of faults: everything is undone."""
        import signal
        d = defer.ensureDeferred(self.nemesis.execute(
            [Fault("partition-halves", 0, 10, order=NAMES)]))
        self.clock.advance(0.5)
        self.assertTrue(self.nemesis.partitioned)
        self.successResultOf(defer.ensureDeferred(self.nemesis.begin(
            Fault("pause", 0, 1, node="n1"))))
        self.scripts.clear()
        self.successResultOf(defer.ensureDeferred(self.nemesis.healAll()))
        self.assertFalse(self.nemesis.partitioned)
        self.assertIn(("signal", "n1", signal.SIGCONT), self.target.calls)
        self.assertTrue(all("DROP" not in s for _, s in self.scripts))
        self.assertEqual(len(self.scripts), 3)
        for _ in range(120):
            self.clock.advance(0.1)
        self.successResultOf(d)

    def test_failedFaultIsRecordedNotRaised(self):
        self.nemesis.relay = None
        self.runFaults([Fault("delay", 1, 1, amount=50)], 3)
        self.assertEqual(self.history.events, [])
        self.assertEqual(len(self.nemesis.errors), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DelayLineTests(SynchronousTestCase):

    @given(st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)),
                    max_size=30), st.floats(0, 0.5), st.floats(0, 0.5))
    def test_orderAndDelay(self, arrivals, delay, jitter):
        """Bytes come out in order, none before its delay."""
        line = DelayLine(random.Random(1))
        line.delay, line.jitter = delay, jitter
        now, sent, out, dues = 0.0, b"", b"", []
        for gap, data in arrivals:
            now += gap
            dues.append((line.push(now, data), now))
            sent += data
        for due, arrived in dues:
            self.assertGreaterEqual(due, arrived + delay)
        self.assertEqual([d for d, _ in dues], sorted(d for d, _ in dues))
        t = 0.0
        for _ in range(100):
            data, nextDue = line.pop(t)
            out += data
            if nextDue is None:
                break
            self.assertGreater(nextDue, t)
            t = nextDue
        self.assertEqual((out, line.pending), (sent, 0))

    def test_immediate(self):
        line = DelayLine()
        self.assertTrue(line.immediate)
        line.delay = 0.1
        self.assertFalse(line.immediate)

    def test_control(self):
        relay = Relay(None, {}, {})
        control = RelayControl(relay)
        transport = StringTransport()
        control.makeConnection(transport)
        control.dataReceived(b"delay 100 20\nstats\nfrobnicate\ndelay x\n")
        self.assertEqual(transport.value().splitlines(), [
            b"ok delay 100 20", b"ok connections 0", b"error unknown command",
            b"error bad arguments"])
        self.assertEqual((relay.delay, relay.jitter), (0.1, 0.02))


class _Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(b"%s|%s" % (self.transport.getPeer().host.encode(), data))


class _Client(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.waiting = None

    def dataReceived(self, data):
        self.received += data
        if self.waiting is not None and b"|" in self.received:
            d, self.waiting = self.waiting, None
            d.callback(self.received)


class RelayLoopbackTests(TestCase):

    async def connect(self, port):
        client = _Client()
        endpoint = protocol.ClientCreator(reactor, lambda: client)
        await endpoint.connectTCP("127.0.0.1", port)
        self.addCleanup(client.transport.loseConnection)
        return client

    async def echo(self, client, data):
        client.received = b""
        client.waiting = defer.Deferred()
        began = reactor.seconds()
        client.transport.write(data)
        answer = await client.waiting
        return answer, reactor.seconds() - began

    async def test_relayAndDelay(self):
        """
        Bytes go through unchanged, the onward connection comes from the
        caller's mapped address, and a delay holds them at least that long
        each way.
        """
        server = reactor.listenTCP(0, protocol.Factory.forProtocol(_Echo), interface="127.0.0.1")
        self.addCleanup(server.stopListening)
        relay = Relay(reactor, {("127.0.0.1", 0): ("127.0.0.1", server.getHost().port)},
                      {"127.0.0.1": "127.0.0.2"})
        relay.listen()
        for port in relay.ports:
            self.addCleanup(port.stopListening)
        client = await self.connect(relay.ports[0].getHost().port)
        answer, _ = await self.echo(client, b"hello")
        self.assertEqual(answer, b"127.0.0.2|hello")
        relay.setDelay(0.2, 0.05)
        answer, took = await self.echo(client, b"again")
        self.assertEqual(answer, b"127.0.0.2|again")
        self.assertGreaterEqual(took, 0.4)
        self.assertEqual(relay.connections, 1)

    async def test_process(self):
        """The relay as the harness runs it: a child process driven by lines."""
        server = reactor.listenTCP(0, protocol.Factory.forProtocol(_Echo), interface="127.0.0.1")
        self.addCleanup(server.stopListening)
        port = freePort()
        process = RelayProcess(reactor, [sys.executable, "-m", "raftmux.chaos.relay",
                                         "127.0.0.1:%d=127.0.0.1:%d" % (
                                             port, server.getHost().port)],
                               env=childEnvironment())
        await process.start()
        self.addCleanup(process.stop)
        self.assertEqual(await process.setDelay(10, 5), "ok delay 10 5")
        client = await self.connect(port)
        answer, _ = await self.echo(client, b"x")
        self.assertEqual(answer, b"127.0.0.1|x")
        await process.stop()
        self.assertTrue(process.exited)

    def test_forNetwork(self):
        process = RelayProcess.forNetwork(reactor, Network(NAMES))
        argv = process.argv
        self.assertEqual(argv[1:4], ["netns", "exec", "rmxc-hub"])
        self.assertIn("10.77.0.102:2380=10.77.0.12:2380", argv)
        self.assertIn("--source=10.77.0.13=10.77.0.103", argv)


class _Register:
    """An in-memory register per key behind ``IRegisterClient``, with faults."""

    def __init__(self):
        self.data = {}
        self.hang = set()
        self.errors = {}

    def _fault(self, f):
        if f in self.hang:
            return defer.Deferred()
        if f in self.errors:
            return defer.fail(self.errors[f])
        return None

    def read(self, key, serializable=False):
        return self._fault(READ) or defer.succeed(self.data.get(key))

    def write(self, key, value):
        fault = self._fault(WRITE)
        if fault is not None:
            return fault
        self.data[key] = value
        return defer.succeed(None)

    def cas(self, key, prev, new):
        fault = self._fault(CAS)
        if fault is not None:
            return fault
        if self.data.get(key) != prev:
            return defer.succeed(False)
        self.data[key] = new
        return defer.succeed(True)


class WorkloadTests(SynchronousTestCase):

    def runWorkload(self, register, until=5.0, clients=3, **kwargs):
        clock = Clock()
        history = History()
        workload = Workload(clock, [("n%d" % (i % 3 + 1,), register) for i in range(clients)],
                            history, clock.seconds, random.Random(7), keys=2, **kwargs)
        d = workload.run(until)
        for _ in range(int(until * 100) + 1000):
            if d.called:
                break
            clock.advance(0.01)
        self.successResultOf(d)
        return history

    def test_aGoodRegisterIsLinearizable(self):
        history = self.runWorkload(_Register())
        self.assertGreater(len(history.ops), 100)
        self.assertEqual({op.f for op in history.ops}, {READ, WRITE, CAS})
        self.assertTrue(any(op.f == CAS and op.result for op in history.ops))
        self.assertTrue(all(op.type == OK for op in history.ops))
        self.assertEqual(check(history.ops).verdict, LINEARIZABLE)
        written = [op.value for op in history.ops if op.f == WRITE]
        self.assertEqual(len(written), len(set(written)))

    def test_timeouts(self):
        """
        Writes that never answer are indeterminate, and their client goes
        on as a new process; reads that never answer are failures.
        """
        register = _Register()
        register.hang = {WRITE, READ}
        history = self.runWorkload(register, until=10.0, opTimeout=1.0)
        writes = [op for op in history.ops if op.f == WRITE]
        reads = [op for op in history.ops if op.f == READ]
        self.assertTrue(writes and reads)
        self.assertTrue(all(op.type == INFO and op.error == "timeout" for op in writes))
        self.assertTrue(all(op.type == FAIL for op in reads))
        self.assertGreater(max(op.process for op in history.ops), 2)
        self.assertTrue(all(op.complete - op.invoke >= 1.0 - 1e-6 for op in writes))

    def test_failedAndIndeterminateAnswers(self):
        register = _Register()
        register.errors = {WRITE: Failed("503 no leader"), CAS: Indeterminate("504"),
                           READ: Indeterminate("odd")}
        history = self.runWorkload(register)
        kinds = {(op.f, op.type) for op in history.ops}
        self.assertEqual(kinds, {(WRITE, FAIL), (READ, FAIL)})  # no cas without a value seen
        register = _Register()
        register.data = {"k0": "0", "k1": "0"}
        register.errors = {CAS: Indeterminate("504")}
        history = self.runWorkload(register)
        self.assertIn((CAS, INFO), {(op.f, op.type) for op in history.ops})
        self.assertEqual([op.error for op in history.ops if op.f == CAS][0], "504")

    def test_unexpectedErrorsAreLogged(self):
        register = _Register()
        register.errors = {WRITE: ZeroDivisionError()}
        history = self.runWorkload(register, until=1.0)
        self.assertTrue(all(op.type == INFO for op in history.ops if op.f == WRITE))
        self.assertTrue(self.flushLoggedErrors(ZeroDivisionError))


class _FakeHTTP:
    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    async def request(self, method, url, body=None, headers=None):
        self.requests.append((method, url, body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class ClientTests(SynchronousTestCase):

    def call(self, client, method, *args):
        d = defer.ensureDeferred(getattr(client, method)(*args))
        if d.called and isinstance(d.result, Failure):
            return self.failureResultOf(d).value
        return self.successResultOf(d)

    def test_raftmuxAnswers(self):
        http = _FakeHTTP([(200, b"v"), (404, b"{}"), (503, b'{"error":"no leader"}'),
                          (200, b"{}"), (412, b'{"error":"compare failed"}'), (200, b"{}"),
                          (503, b'{"error":"no leader"}'),
                          (503, b'{"error":"the leader 1 could not be reached: reset"}'),
                          (504, b'{"error":"late"}'), (500, b"oops"), (400, b"{}"),
                          RuntimeError("cut"), Failed("cannot connect")])
        client = RaftmuxClient(http, "http://m:2379")
        self.assertTrue(IRegisterClient.providedBy(client))
        self.assertEqual(self.call(client, "read", "a b", True), "v")
        self.assertEqual(http.requests[0], (b"GET", "http://m:2379/kv/a%20b?serializable=true",
                                            None))
        self.assertIsNone(self.call(client, "read", "k"))
        self.assertIsInstance(self.call(client, "read", "k"), Failed)
        self.assertIsNone(self.call(client, "write", "k", "1"))
        self.assertIs(self.call(client, "cas", "k", "1 &2", "3"), False)
        self.assertEqual(http.requests[4], (b"PUT", "http://m:2379/kv/k?prevValue=1%20%262",
                                            b"3"))
        self.assertIs(self.call(client, "cas", "k", "1", "3"), True)
        self.assertIsInstance(self.call(client, "write", "k", "1"), Failed)
        for _ in range(3):
            self.assertIsInstance(self.call(client, "write", "k", "1"), Indeterminate)
        self.assertIsInstance(self.call(client, "write", "k", "1"), Failed)
        self.assertIsInstance(self.call(client, "write", "k", "1"), Indeterminate)
        self.assertIsInstance(self.call(client, "write", "k", "1"), Failed)

    def test_etcdAnswers(self):
        http = _FakeHTTP([
            (200, b'{"header":{},"kvs":[{"key":"aw==","value":"dg=="}],"count":"1"}'),
            (200, b'{"header":{}}'), (200, b'{"header":{}}'),
            (200, b'{"header":{},"succeeded":true}'), (200, b'{"header":{}}'),
            (503, b'{"error":"etcdserver: request timed out","code":14}'),
            (503, b'{"error":"etcdserver: no leader","code":14}')])
        client = EtcdClient(http, "http://m:2379")
        self.assertEqual(self.call(client, "read", "k", True), "v")
        self.assertEqual(json.loads(http.requests[0][2]), {"key": "aw==", "serializable": True})
        self.assertEqual(http.requests[0][1], "http://m:2379/v3/kv/range")
        self.assertIsNone(self.call(client, "read", "k"))
        self.assertIsNone(self.call(client, "write", "k", "v"))
        self.assertEqual(json.loads(http.requests[2][2]), {"key": "aw==", "value": "dg=="})
        self.assertIs(self.call(client, "cas", "k", "v", "w"), True)
        self.assertEqual(json.loads(http.requests[3][2]), {
            "compare": [{"key": "aw==", "target": "VALUE", "result": "EQUAL", "value": "dg=="}],
            "success": [{"request_put": {"key": "aw==", "value": "dw=="}}]})
        self.assertIs(self.call(client, "cas", "k", "v", "w"), False)
        self.assertIsInstance(self.call(client, "write", "k", "v"), Indeterminate)
        self.assertIsInstance(self.call(client, "read", "k"), Failed)


class RaftmuxClientNodeTests(TestCase):
    """The raftmux client against three real in-process nodes."""

    timeout = 60

    async def test_againstNodes(self):
        from raftmux.node.testing import makeCluster, startNode, stopNode, urlOf
        from raftmux.rafthttp.testing import waitFor

        directory = self.mktemp()
        os.makedirs(directory)
        nodes, ports = await makeCluster(reactor, directory, 3)
        for node, port in zip(nodes, ports, strict=True):
            self.addCleanup(port.stopListening)
            await startNode(node, port)
            self.addCleanup(stopNode, node)
        await waitFor(reactor, lambda: any(n.isLeader for n in nodes), timeout=20,
                      what="a leader")
        http = HTTPClient(reactor, 2)
        self.addCleanup(http.close)
        follower = next(i for i, n in enumerate(nodes) if not n.isLeader)
        client = RaftmuxClient(http, urlOf(ports[follower]))
        self.assertIsNone(await client.read("k"))
        self.assertIs(await client.cas("k", "x", "y"), False)
        await client.write("k", "x y")
        self.assertEqual(await client.read("k"), "x y")
        self.assertIs(await client.cas("k", "x y", "z"), True)
        self.assertIs(await client.cas("k", "x y", "w"), False)
        self.assertEqual(await client.read("k"), "z")
        await waitFor(reactor, lambda: nodes[follower].keySpace.get(b"k").value == b"z", what="apply")
        self.assertEqual(await client.read("k", serializable=True), "z")
        await deferLater(reactor, 0, lambda: None)


class ReportTests(SynchronousTestCase):

    def history(self):
        history = History()
        ops = [Op(1, "k", WRITE, "a", OK, 0.1, 0.2, node="n1"),
               Op(2, "k", WRITE, "b", OK, 0.3, 0.4, node="n2"),
               Op(3, "k", READ, "a", OK, 0.5, 0.6, node="n3", process=2),
               Op(4, "k", CAS, ["b", "c"], INFO, 0.7, 2.7, node="n1"),
               Op(5, "j", CAS, ["x", "y"], OK, 0.8, 0.9, result=False),
               Op(6, "j", READ, None, FAIL, 1.0, 1.1, error="timeout")]
        for op in ops:
            history.add(op)
        from raftmux.chaos.history import NemesisEvent
        history.addEvent(NemesisEvent("partition-leader", "start", 0.25, {"sides": []}))
        history.addEvent(NemesisEvent("partition-leader", "stop", 0.9))
        return history

    def run_(self):
        return {"target": "raftmux", "nodes": 3, "seed": 9, "time": 10.0,
                "reads": "serializable", "nemeses": ["partition-leader"]}

    def test_summaryAndTable(self):
        history = self.history()
        result = check(history.ops)
        summary = report.summarize(self.run_(), history, result, {"history": "h.jsonl"},
                                   plotsSkipped="no matplotlib")
        self.assertIs(summary["valid"], False)
        self.assertEqual(summary["ops"]["all"], {"total": 6, "ok": 4, "failed": 1,
                                                 "indeterminate": 1})
        self.assertEqual((summary["ops"][CAS]["set"], summary["ops"][CAS]["compare_failed"]),
                         (0, 1))
        self.assertEqual(summary["nemesis"]["counts"], {"partition-leader": 1})
        json.dumps(summary)
        text = report.table(summary, result.anomalies)
        self.assertIn("NOT LINEARIZABLE", text)
        self.assertIn("read k -> 'a'  <- cannot take effect", text)
        self.assertIn("write k 'a'  (outside the window: wrote a value seen in it)", text)
        self.assertIn("partition-leader x1", text)
        self.assertIn("plots      none: no matplotlib", text)

    def test_plots(self):
        directory = self.mktemp()
        os.makedirs(directory)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            paths, why = report.plot(self.history(), directory)
            self.assertEqual(paths, [])
            self.assertIn("matplotlib is not installed", why)
            return
        paths, why = report.plot(self.history(), directory, "(test)")
        self.assertIsNone(why)
        self.assertEqual([os.path.basename(p) for p in paths], ["latency.png", "rate.png"])
        for path in paths:
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_withoutMatplotlib(self):
        with mock.patch.dict(sys.modules, {"matplotlib": None}):
            paths, why = report.plot(self.history(), self.mktemp())
        self.assertEqual(paths, [])
        self.assertIn("pip install 'raftmux[chaos]'", why)


class CommandLineTests(SynchronousTestCase):
    """What the command says when it cannot run, without running anything."""

    def main(self, argv, why=None):
        from raftmux.chaos import __main__ as cli
        err = io.StringIO()
        with mock.patch.object(cli, "requirements", lambda: why), \
                mock.patch.object(sys, "stderr", err):
            try:
                code = cli.main(argv, out=io.StringIO())
            except SystemExit as e:
                code = e.code
        return code, err.getvalue()

    def test_notRoot(self):
        code, err = self.main(["--time", "1"], why="must run as root (it creates ...)")
        self.assertEqual(code, 2)
        self.assertIn("python -m raftmux.chaos: must run as root", err)

    def test_badNemesis(self):
        code, _ = self.main(["--time", "1", "--nemesis", "flood"])
        self.assertIn("unknown nemesis flood", str(code))

    def test_timeRequired(self):
        code, _ = self.main([])
        self.assertEqual(code, 2)
