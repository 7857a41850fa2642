# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
Service methods are written as coroutines and called as Deferreds: every
unary rpc returns a Deferred, whatever its body, so a transport binding
needs one calling convention.
"""

import functools
import inspect

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["deferredMethod", "withTimeout"]


def deferredMethod(f):
    """Make ``f`` (a coroutine function or a plain one) return a Deferred."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException:
            return defer.fail()
        if inspect.iscoroutine(result):
            return defer.ensureDeferred(result)
        if isinstance(result, defer.Deferred):
            return result
        return defer.succeed(result)

    return wrapper


def withTimeout(d, seconds, clock, error):
    """
    ``d``, failing with ``error()`` (an EtcdError class or factory) when it
    has not fired within ``seconds``.  The original Deferred is cancelled.
    """
    result = defer.Deferred()
    timedOut = []

    def onTimeout():
        timedOut.append(True)
        d.cancel()

    call = clock.callLater(seconds, onTimeout)

    def done(value):
        if call.active():
            call.cancel()
        if timedOut:
            result.errback(error())
        elif isinstance(value, Failure):
            result.errback(value)
        else:
            result.callback(value)

    d.addBoth(done)
    return result
