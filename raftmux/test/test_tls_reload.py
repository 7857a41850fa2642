# -*- test-case-name: raftmux.test.test_tls_reload -*-
"""
Certificates replaced on disk reach new connections without a restart:
``reload()`` (what SIGHUP calls) and ``watch()`` (polling the files on a
clock).  Existing connections keep what they had; files that do not load
keep the old context and log why.
"""

import os

from twisted.internet import task
from twisted.logger import LogLevel, capturedLogs

from raftmux.test.test_tls_handshake import Pair, TLSTestCase, tlsLines
from raftmux.testing.tlsca import CertificateAuthority, writeFiles
from raftmux.tls import ClientPolicy, tlsServerFactory


def cryptographyOf(certificate):
    return certificate.original.to_cryptography()


def touch(*paths):
    """Move the files' mtime on by a second, so a poller sees them change."""
    for path in paths:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


class ReloadTests(TLSTestCase):
    def setUp(self):
        TLSTestCase.setUp(self)
        self.old = self.ca.issue("node1", ipAddresses=["127.0.0.1"], usage="both")
        self.server = self.info(self.old, clientCertAuth=True)
        self.factory = tlsServerFactory(self.server, None, clock=self.clock)
        self.newCA = CertificateAuthority("the new CA")
        self.new = self.newCA.issue("node1", ipAddresses=["127.0.0.1"], usage="both")
        # During a CA rotation both CAs are trusted.
        self.bothCAs = self.mktemp()
        with open(self.bothCAs, "wb") as f:
            f.write(self.ca.pem + self.newCA.pem)
        self.client = self.info(self.ca.issue("node2", client=True))
        self.client.trustedCAFile = self.bothCAs

    def dial(self, clientInfo=None):
        self.factory.wrappedFactory = None
        pair = Pair(self.factory, ClientPolicy(clientInfo or self.client).creatorFor("127.0.0.1"),
                    self.clock)
        pair.clientApp.transport.write(b"hello")
        pair.flush()
        return pair

    def presented(self, pair):
        """The certificate the server showed the client (``None`` if refused)."""
        if pair.clientApp.lost is not None:
            return None
        return pair.clientApp.transport.getPeerCertificate().to_cryptography()

    def rotate(self, certificate):
        writeFiles(os.path.dirname(self.server.certFile),
                   os.path.basename(self.server.certFile)[:-4], certificate)
        with open(self.server.trustedCAFile, "wb") as f:
            f.write(self.ca.pem + self.newCA.pem)
        touch(self.server.certFile, self.server.keyFile, self.server.trustedCAFile)

    def test_rotateToACertificateFromANewCA(self):
        before = self.dial()
        self.assertEqual(self.presented(before), cryptographyOf(self.old))
        self.rotate(self.new)
        with capturedLogs() as events:
            self.assertTrue(self.factory.reload())
        [line] = tlsLines(events, LogLevel.info)
        self.assertIn("reloaded TLS files: CN=node1, valid until", line)
        self.assertIn("2 trusted CA(s)", line)
        after = self.dial()
        self.assertEqual(self.presented(after), cryptographyOf(self.new))
        self.assertEqual(after.serverApp.received, b"hello")
        # The connection made before is untouched and still works.
        before.clientApp.transport.write(b" again")
        before.flush()
        self.assertEqual(before.serverApp.received, b"hello again")
        self.assertIsNone(before.clientApp.lost)

    def test_badFilesKeepTheOldCertificate(self):
        with open(writeFiles(self.mktemp(), "k", self.new)[1], "rb") as f:
            otherKey = f.read()
        cases = [
            ("certFile", b"not a certificate", "holds no PEM certificate"),
            ("keyFile", otherKey, "does not match"),
            ("trustedCAFile", b"", "holds no PEM certificate"),
        ]
        for attribute, content, problem in cases:
            path = getattr(self.server, attribute)
            with open(path, "rb") as f:
                saved = f.read()
            with open(path, "wb") as f:
                f.write(content)
            with capturedLogs() as events:
                self.assertFalse(self.factory.reload())
            [line] = tlsLines(events, LogLevel.error)
            self.assertIn("reload failed, keeping the current certificate (CN=node1", line)
            self.assertIn(path, line)
            self.assertIn(problem, line)
            self.assertEqual(self.presented(self.dial()), cryptographyOf(self.old))
            with open(path, "wb") as f:
                f.write(saved)
        self.assertEqual(self.factory.contextFactory.reloads, 0)

    def test_missingFilesKeepTheOldCertificate(self):
        os.remove(self.server.keyFile)
        with capturedLogs() as events:
            self.assertFalse(self.factory.reload())
        [line] = tlsLines(events, LogLevel.error)
        self.assertIn("cannot read it: No such file or directory", line)
        self.assertEqual(self.presented(self.dial()), cryptographyOf(self.old))

    def test_watchPollsTheFiles(self):
        clock = task.Clock()
        contextFactory = self.factory.contextFactory
        watcher = contextFactory.watch(clock, interval=5)
        self.addCleanup(contextFactory.stopWatching)
        clock.advance(5)
        self.assertEqual(contextFactory.reloads, 0, "unchanged files are not reloaded")
        self.rotate(self.new)
        clock.advance(5)
        self.assertEqual(contextFactory.reloads, 1)
        self.assertEqual(self.presented(self.dial()), cryptographyOf(self.new))

        # A half-written rotation (new certificate, old key) fails once, is
        # not retried while the files stay the same, and succeeds when the
        # key arrives.
        writeFiles(os.path.dirname(self.server.certFile), "n-tmp", self.old)
        with open(self.server.certFile, "wb") as f, open(
                os.path.join(os.path.dirname(self.server.certFile), "n-tmp.crt"), "rb") as g:
            f.write(g.read())
        touch(self.server.certFile)
        with capturedLogs() as events:
            clock.advance(5)
            clock.advance(5)
        self.assertEqual(len(tlsLines(events, LogLevel.error)), 1)
        self.assertEqual(self.presented(self.dial()), cryptographyOf(self.new))
        self.rotate(self.old)
        clock.advance(5)
        self.assertEqual(contextFactory.reloads, 2)
        self.assertEqual(self.presented(self.dial()), cryptographyOf(self.old))

        contextFactory.stopWatching()
        self.assertFalse(watcher.running)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_clientPolicyReload(self):
        """A client policy picks up a new client certificate and a new CA file."""
        policy = ClientPolicy(self.client)

        def connect():
            self.factory.wrappedFactory = None
            pair = Pair(self.factory, policy.creatorFor("127.0.0.1"), self.clock)
            pair.clientApp.transport.write(b"hello")
            pair.flush()
            return pair

        first = connect()
        self.assertEqual(first.serverApp.transport.getPeerCertificate().to_cryptography(),
                         policy.material.certificate)
        replacement = self.ca.issue("node2-rotated", client=True)
        writeFiles(os.path.dirname(self.client.certFile),
                   os.path.basename(self.client.certFile)[:-4], replacement)
        # Trust only the new CA: the server (still on the old one) is refused.
        with open(self.client.trustedCAFile, "wb") as f:
            f.write(self.newCA.pem)
        self.assertTrue(policy.reload())
        with capturedLogs() as events:
            refused = connect()
        self.assertIsNotNone(refused.clientApp.lost)
        self.assertIn("unknown CA", tlsLines(events, LogLevel.warn)[0])
        self.rotate(self.new)
        self.factory.reload()
        second = connect()
        self.assertEqual(second.serverApp.transport.getPeerCertificate().to_cryptography(),
                         cryptographyOf(replacement))
        self.assertEqual(policy.reloads, 1)
