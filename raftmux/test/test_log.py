# -*- test-case-name: raftmux.test.test_log -*-
"""
``--log-level`` and ``--logger``: the level filter in front of every log
line, the JSON lines of ``--logger zap``, the observer ``twistd raftmux``
gives twistd's application, and a real twistd whose output drops the
lines below the level.
"""

import io
import json
import os
import socket
import subprocess
import sys

from twisted.application import service
from twisted.logger import FilteringLogObserver, ILogObserver, Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from raftmux import tap
from raftmux._log import canonicalLevel, fileObserver, levelFilter


def emitAll(observer):
    """One line at each level into ``observer``."""
    log = Logger(namespace="raftmux.test", observer=observer)
    log.debug("line at debug")
    log.info("line at info")
    log.warn("line at warn")
    log.error("line at error")
    log.critical("line at critical")


def seen(text):
    return [level for level in ("debug", "info", "warn", "error", "critical")
            if "line at " + level in text]


class LevelFilterTests(SynchronousTestCase):

    def filtered(self, level):
        out = io.StringIO()
        emitAll(levelFilter(level, fileObserver(out)))
        return seen(out.getvalue())

    def test_dropsBelowTheLevel(self):
        self.assertEqual(self.filtered("warn"), ["warn", "error", "critical"])
        self.assertEqual(self.filtered("info"), ["info", "warn", "error", "critical"])
        self.assertEqual(self.filtered("critical"), ["critical"])

    def test_traceAndDebugLetAllThrough(self):
        self.assertEqual(self.filtered("trace"), ["debug", "info", "warn", "error", "critical"])
        self.assertEqual(self.filtered("debug"), ["debug", "info", "warn", "error", "critical"])

    def test_etcdLevels(self):
        self.assertEqual(self.filtered("fatal"), ["critical"])
        self.assertEqual(self.filtered("panic"), ["critical"])
        self.assertRaises(ValueError, canonicalLevel, "loud")


class ZapTests(SynchronousTestCase):
    """``--logger zap``: one JSON object per line, with zap's field names."""

    def test_jsonLines(self):
        out = io.StringIO()
        log = Logger(namespace="raftmux.node", observer=fileObserver(out, "zap"))
        log.info("member {name} listening", name="n1")
        try:
            raise ZeroDivisionError("a test failure")
        except ZeroDivisionError:
            log.failure("it broke", Failure())
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first, second = (json.loads(line) for line in lines)
        self.assertEqual({k: first[k] for k in ("level", "logger", "msg")},
                         {"level": "info", "logger": "raftmux.node",
                          "msg": "member n1 listening"})
        self.assertRegex(first["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual((second["level"], second["msg"]), ("critical", "it broke"))
        self.assertIn("ZeroDivisionError", second["error"])

    def test_unknownLogger(self):
        self.assertRaises(ValueError, fileObserver, io.StringIO(), "syslog")


class TwistdObserverTests(SynchronousTestCase):
    """What ``twistd raftmux`` gives twistd's application as its log observer."""

    def application(self, *argv):
        from twisted.scripts.twistd import ServerOptions
        config = ServerOptions()
        config.parseOptions(list(argv))
        application = service.Application("raftmux")
        tap.makeService(config.subOptions).setServiceParent(application)
        return application

    def test_filteredStandardOutput(self):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        application = self.application("-n", "raftmux", "--log-level", "warn",
                                        "--data-dir", self.mktemp())
        observer = application.getComponent(ILogObserver)
        self.assertIsInstance(observer, FilteringLogObserver)
        emitAll(observer)
        self.assertEqual(seen(out.getvalue()), ["warn", "error", "critical"])

    def test_zapOnStandardOutput(self):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        application = self.application("-n", "raftmux", "--logger", "zap",
                                        "--data-dir", self.mktemp())
        emitAll(application.getComponent(ILogObserver))
        levels = [json.loads(line)["level"] for line in out.getvalue().splitlines()]
        self.assertEqual(levels, ["info", "warn", "error", "critical"])

    def test_twistdLoggerOptionWins(self):
        """``twistd --logger`` names an observer: twistd uses it, so none is set."""
        application = self.application("-n", "--logger", "twisted.logger.globalLogPublisher",
                                       "raftmux", "--data-dir", self.mktemp())
        self.assertIsNone(application.getComponent(ILogObserver))

    def test_withoutTwistdNothingIsSet(self):
        """A .tac composing ``makeService`` chooses its own observer."""
        options = tap.Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        application = service.Application("raftmux")
        tap.makeService(options).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver))


class TwistdProcessTests(SynchronousTestCase):
    """
    A real ``twistd -n raftmux`` whose port is taken: it logs why it cannot
    start (critical) and exits.  At ``--log-level error`` nothing else is
    printed, not even twistd's own start-up lines (info).
    """

    def twistd(self, *flags):
        from raftmux.cluster import childEnvironment, twistdCommand
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        url = "http://127.0.0.1:%d" % (taken.getsockname()[1],)
        directory = self.mktemp()
        os.makedirs(directory)
        argv = twistdCommand() + [
            "-n", "--pidfile=", "raftmux", "--data-dir", os.path.join(directory, "d"),
            "--listen-peer-urls", url, "--initial-advertise-peer-urls", url,
            "--listen-client-urls", url, "--advertise-client-urls", url] + list(flags)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                             env=childEnvironment(), cwd=directory)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("cannot start", out.stdout)
        return out.stdout

    def test_errorLevelDropsInfo(self):
        self.assertNotIn("starting up", self.twistd("--log-level", "error"))

    def test_defaultLevelKeepsInfo(self):
        self.assertIn("starting up", self.twistd())
