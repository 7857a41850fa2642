# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
The workload: concurrent clients doing reads, writes and compare-and-sets
on a few keys, each client bound to one member (as Jepsen binds its
processes to nodes), every operation recorded in the ``History``.

Every written value is unique (a counter), which keeps the checker's
search narrow.  A compare-and-set compares with the latest value the
workload has seen for the key, so that many of them succeed.

An operation that gets no answer within ``opTimeout`` is abandoned: a
write or compare-and-set becomes indeterminate (``info``), and its client
continues as a new process (Jepsen's rule: a process has at most one
operation in flight, and the abandoned one may still be in flight); a
read becomes a failure (it changed nothing).
"""

import random
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from raftmux.chaos.history import CAS, FAIL, INFO, OK, READ, WRITE, Op
from raftmux.chaos.targets import Failed, Indeterminate

__all__ = ["Workload"]

_log = Logger()


class Workload:
    """
    ``clients``: ``[(member name, IRegisterClient)]``, one per concurrent
    client.  ``clock()``: seconds since the run began.  ``rng``: a
    ``random.Random``.  ``mix``: weights of read, write and cas.
    """

    def __init__(self, reactor, clients, history, clock, rng, keys=5, opTimeout=2.0,
                 serializable=False, mix=(2, 1, 1), pause=0.01, backoff=0.1):
        self.reactor = reactor
        self.clients = list(clients)
        self.history = history
        self.clock = clock
        self.rng = rng
        self.keys = ["k%d" % (i,) for i in range(keys)]
        self.opTimeout = opTimeout
        self.serializable = serializable
        self.mix = mix
        self.pause = pause
        self.backoff = backoff
        self.latest = {}
        self._nextValue = 0
        self._nextID = 0
        self._stopping = False
        self._inflight = set()

    def _value(self):
        self._nextValue += 1
        return str(self._nextValue)

    def _choose(self, rng):
        r = rng.random() * sum(self.mix)
        if r < self.mix[0]:
            return READ
        if r < self.mix[0] + self.mix[1]:
            return WRITE
        return CAS

    def run(self, until):
        """Run every client until ``clock()`` passes ``until``; fires when all stopped."""
        return defer.gatherResults([defer.ensureDeferred(self._client(i, name, client, until))
                                    for i, (name, client) in enumerate(self.clients)])

    def stop(self):
        """Stop issuing operations (those in flight finish or time out)."""
        self._stopping = True

    async def _client(self, index, name, client, until):
        rng = random.Random(self.rng.random())
        process = index
        while not self._stopping and self.clock() < until:
            op = await self._one(process, name, client, rng)
            if op.type == INFO:
                process += len(self.clients)
            if op.type != OK:
                await self._sleep(self.backoff * (0.5 + rng.random()))
            elif self.pause:
                await self._sleep(self.pause * rng.random())

    async def _one(self, process, name, client, rng):
        key = rng.choice(self.keys)
        f = self._choose(rng)
        if f == READ:
            value = None
            call = client.read(key, self.serializable)
        elif f == WRITE:
            value = self._value()
            call = client.write(key, value)
        else:
            prev = self.latest.get(key)
            if prev is None:
                f, value = WRITE, self._value()
                call = client.write(key, value)
            else:
                value = [prev, self._value()]
                call = client.cas(key, prev, value[1])
        self._nextID += 1
        op = Op(self._nextID, key, f, value, INFO, self.clock(), None, None, process, name)
        d = defer.ensureDeferred(call)
        d.addTimeout(self.opTimeout, self.reactor)
        self._inflight.add(d)
        try:
            result = await d
        except (defer.TimeoutError, defer.CancelledError):
            op.error = "timeout"
            op.type = FAIL if f == READ else INFO
        except Failed as e:
            op.error = str(e)
            op.type = FAIL
        except Indeterminate as e:
            op.error = str(e)
            op.type = FAIL if f == READ else INFO
        except Exception as e:
            _log.failure("chaos client {name}: unexpected error", name=name)
            op.error = "%s: %s" % (e.__class__.__name__, e)
            op.type = FAIL if f == READ else INFO
        else:
            op.type = OK
            if f == READ:
                op.value = result
                if result is not None:
                    self.latest[key] = result
            elif f == WRITE:
                self.latest[key] = value
            else:
                op.result = bool(result)
                if op.result:
                    self.latest[key] = value[1]  # type: ignore[index]
        finally:
            self._inflight.discard(d)
        op.complete = self.clock()  # for info: when the client stopped waiting
        self.history.add(op)
        return op

    def _sleep(self, seconds):
        d: defer.Deferred[Any] = defer.Deferred()
        self.reactor.callLater(seconds, d.callback, None)
        return d
