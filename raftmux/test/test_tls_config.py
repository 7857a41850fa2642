# -*- test-case-name: raftmux.test.test_tls_config -*-
"""
``raftmux.tls`` configuration: ``TLSInfo`` and its flag names, the file
checks (each ``TLSConfigError`` message checked), ``checkURLs``, and the
``raftmux.testing.tlsca`` helpers the other TLS tests rely on.
"""

import datetime
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from raftmux.testing.tlsca import CertificateAuthority, certificatePEM, writeFiles
from raftmux.tls import (
    CLIENT,
    PEER,
    ClientPolicy,
    TLSConfigError,
    TLSInfo,
    checkURLs,
    loadMaterial,
    optFlags,
    optParameters,
    serverContextFactory,
)


def cryptographyOf(certificate):
    return certificate.original.to_cryptography()


class Files:
    """A CA and a peer certificate written to a fresh directory."""

    def __init__(self, testCase):
        self.directory = testCase.mktemp()
        self.ca = CertificateAuthority()
        self.cert = self.ca.issue("node1", ipAddresses=["127.0.0.1"], usage="both")
        self.certFile, self.keyFile = writeFiles(self.directory, "node1", self.cert)
        self.caFile = self.ca.writeCAFile(self.directory)

    def path(self, name):
        return os.path.join(self.directory, name)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)


class TLSInfoTests(SynchronousTestCase):
    def assertConfigError(self, expected, f, *args, **kwargs):
        error = self.assertRaises(TLSConfigError, f, *args, **kwargs)
        self.assertEqual(str(error), expected)
        return error

    def test_flagNamesFollowTheRole(self):
        client, peer = TLSInfo(role=CLIENT), TLSInfo(role=PEER)
        self.assertEqual(client.flag("certFile"), "--cert-file")
        self.assertEqual(peer.flag("certFile"), "--peer-cert-file")
        self.assertEqual(client.flag("clientCertAuth"), "--client-cert-auth")
        self.assertEqual(peer.flag("clientCertAuth"), "--peer-client-cert-auth")
        self.assertEqual(peer.flag("allowedCN"), "--peer-cert-allowed-cn")
        self.assertEqual(peer.flag("allowedHostnames"), "--peer-cert-allowed-hostname")
        self.assertRaises(ValueError, TLSInfo, role="server")

    def test_emptyIsFine(self):
        info = TLSInfo()
        self.assertFalse(info.configured)
        self.assertFalse(info.hasCertificate)
        material = info.validate()
        self.assertIsNone(material.certificate)

    def test_certWithoutKey(self):
        self.assertConfigError("--peer-cert-file needs --peer-key-file as well",
                               TLSInfo, certFile="/x.crt", role=PEER)
        self.assertConfigError("--key-file needs --cert-file as well", TLSInfo, keyFile="/x.key")

    def test_clientCertAuthWithoutCA(self):
        self.assertConfigError(
            "--peer-client-cert-auth needs --peer-trusted-ca-file (the CA that client "
            "certificates must chain to)",
            TLSInfo, certFile="a", keyFile="b", clientCertAuth=True, role=PEER)

    def test_allowedNamesNeedClientCertAuth(self):
        self.assertConfigError(
            "--peer-cert-allowed-cn needs --peer-client-cert-auth (there is no client "
            "certificate to check)", TLSInfo, allowedCN="node2", role=PEER)

    def test_allowedCNAndHostnamesExclusive(self):
        self.assertConfigError(
            "--peer-cert-allowed-cn and --peer-cert-allowed-hostname are mutually exclusive",
            TLSInfo, trustedCAFile="ca", clientCertAuth=True, allowedCN="a",
            allowedHostnames="b", role=PEER)

    def test_namesFromCommaSeparatedText(self):
        info = TLSInfo(trustedCAFile="ca", clientCertAuth=True, allowedCN=" a, b ,,c")
        self.assertEqual(info.allowedCN, ("a", "b", "c"))

    def test_fromFlags(self):
        info = TLSInfo.fromFlags({
            "peer-cert-file": "p.crt", "peer-key-file": "p.key",
            "peer-trusted-ca-file": "ca.crt", "peer-client-cert-auth": True,
            "peer-cert-allowed-hostname": "node1.raft,10.0.0.1",
            "cert-file": "client.crt"}, role=PEER)
        self.assertEqual((info.certFile, info.keyFile, info.trustedCAFile, info.clientCertAuth),
                         ("p.crt", "p.key", "ca.crt", True))
        self.assertEqual(info.allowedHostnames, ("node1.raft", "10.0.0.1"))
        client = TLSInfo.fromFlags({"cert-file": "c.crt", "key-file": "c.key"}, role=CLIENT)
        self.assertEqual((client.role, client.certFile), (CLIENT, "c.crt"))

    def test_usageOptionsRows(self):
        """The rows plug into a twistd ``usage.Options`` and feed ``fromFlags``."""

        class Options(usage.Options):
            optParameters = optParameters(PEER) + optParameters(CLIENT)
            optFlags = optFlags(PEER) + optFlags(CLIENT)

        options = Options()
        options.parseOptions(["--peer-cert-file", "p.crt", "--peer-key-file", "p.key",
                              "--peer-trusted-ca-file", "ca.crt", "--peer-client-cert-auth",
                              "--peer-cert-allowed-cn", "node2,node3"])
        info = TLSInfo.fromFlags(options, role=PEER)
        self.assertEqual(info.allowedCN, ("node2", "node3"))
        self.assertTrue(info.clientCertAuth)
        self.assertFalse(TLSInfo.fromFlags(options, role=CLIENT).configured)

    def test_repr(self):
        self.assertEqual(repr(TLSInfo(certFile="a", keyFile="b", role=PEER)),
                         "TLSInfo(role='peer', certFile='a', keyFile='b')")


class CheckURLsTests(SynchronousTestCase):
    def test_httpsNeedsACertificate(self):
        error = self.assertRaises(
            TLSConfigError, checkURLs, "http://127.0.0.1:2380,https://10.0.0.1:2380",
            TLSInfo(role=PEER), "--listen-peer-urls")
        self.assertEqual(str(error), "--listen-peer-urls https://10.0.0.1:2380 needs "
                                     "--peer-cert-file and --peer-key-file")

    def test_clientFlagNames(self):
        error = self.assertRaises(TLSConfigError, checkURLs, ["https://0.0.0.0:2379"],
                                  TLSInfo(trustedCAFile="ca"), "listen-client-urls")
        self.assertEqual(str(error), "--listen-client-urls https://0.0.0.0:2379 needs "
                                     "--cert-file and --key-file")

    def test_allowed(self):
        withCert = TLSInfo(certFile="a", keyFile="b", role=PEER)
        self.assertEqual(checkURLs("https://a:1, http://b:2", withCert, "--x"), ["https://a:1"])
        self.assertEqual(checkURLs("http://a:1", withCert, "--x"), [],
                         "http with a certificate is allowed (served without TLS, as etcd)")
        self.assertEqual(checkURLs("http://a:1", TLSInfo(), "--x"), [])


class FileTests(SynchronousTestCase):
    """``validate()`` reads every file and names the flag, file and problem."""

    def setUp(self):
        self.files = Files(self)

    def info(self, **kwargs):
        fields = dict(certFile=self.files.certFile, keyFile=self.files.keyFile,
                      trustedCAFile=self.files.caFile, role=PEER)
        fields.update(kwargs)
        return TLSInfo(**fields)

    def assertFileError(self, expected, info):
        error = self.assertRaises(TLSConfigError, info.validate)
        self.assertEqual(str(error), expected)
        # The factories refuse to start with the same message.
        self.assertEqual(str(self.assertRaises(TLSConfigError, ClientPolicy, info)), expected)

    def test_good(self):
        material = self.info().validate()
        self.assertEqual(material.certificate, cryptographyOf(self.files.cert))
        self.assertEqual(material.authorities, (cryptographyOf(self.files.ca.certificate),))
        self.assertEqual(material.chain, ())
        self.assertIn("CN=node1, valid until ", material.describe())

    def test_missingFile(self):
        missing = self.files.path("nope.crt")
        self.assertFileError("--peer-cert-file %s: cannot read it: No such file or directory"
                             % (missing,), self.info(certFile=missing))

    def test_unreadableFile(self):
        if os.getuid() == 0:
            # root reads anything; a directory gives an OS error for everyone.
            unreadable = self.files.directory
            why = "Is a directory"
        else:
            unreadable = self.files.write("locked.key", b"")
            os.chmod(unreadable, 0)
            why = "Permission denied"
        self.assertFileError("--peer-key-file %s: cannot read it: %s" % (unreadable, why),
                             self.info(keyFile=unreadable))

    def test_notACertificate(self):
        junk = self.files.write("junk.crt", b"hello\n")
        self.assertFileError("--peer-cert-file %s: holds no PEM certificate" % (junk,),
                             self.info(certFile=junk))

    def test_notAKey(self):
        junk = self.files.write("junk.key", certificatePEM(self.files.cert))
        error = self.assertRaises(TLSConfigError, self.info(keyFile=junk).validate)
        self.assertTrue(str(error).startswith("--peer-key-file %s: not a PEM private key ("
                                              % (junk,)), str(error))

    def test_keyDoesNotMatch(self):
        otherKey = writeFiles(self.files.directory, "other", self.files.ca.issue("other"))[1]
        self.assertFileError(
            "--peer-key-file %s does not match --peer-cert-file %s (the key is not the "
            "certificate's)" % (otherKey, self.files.certFile), self.info(keyFile=otherKey))

    def test_encryptedKey(self):
        from cryptography.hazmat.primitives import serialization

        key = self.files.cert.privateKey.original.to_cryptography_key()
        encrypted = self.files.write("enc.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        self.assertFileError("--peer-key-file %s: the key is encrypted; give it unencrypted"
                             % (encrypted,), self.info(keyFile=encrypted))

    def test_emptyCAFile(self):
        empty = self.files.write("empty-ca.crt", b"")
        self.assertFileError("--peer-trusted-ca-file %s: holds no PEM certificate" % (empty,),
                             self.info(trustedCAFile=empty))

    def test_serverNeedsACertificate(self):
        error = self.assertRaises(TLSConfigError, serverContextFactory,
                                  TLSInfo(trustedCAFile=self.files.caFile, role=PEER))
        self.assertEqual(str(error), "a TLS server needs --peer-cert-file and --peer-key-file")

    def test_chainInTheCertificateFile(self):
        intermediate = self.files.ca.intermediate()
        leaf = intermediate.issue("node9")
        info = intermediate.tlsInfo(self.files.path("chained"), "node9", leaf)
        material = loadMaterial(info)
        self.assertEqual(material.certificate, cryptographyOf(leaf))
        self.assertEqual(material.chain, (cryptographyOf(intermediate.certificate),))
        self.assertEqual(material.authorities, (cryptographyOf(self.files.ca.certificate),))


class TestingCATests(SynchronousTestCase):
    """The certificates ``raftmux.testing.tlsca`` makes are what they claim."""

    def setUp(self):
        self.ca = CertificateAuthority()

    def usages(self, certificate):
        return list(cryptographyOf(certificate).extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value)

    def test_usages(self):
        server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
        self.assertEqual(self.usages(self.ca.issue("a")), [server])
        self.assertEqual(self.usages(self.ca.issue("a", client=True)), [client])
        self.assertEqual(self.usages(self.ca.issue("a", usage="client")), [client])
        self.assertEqual(self.usages(self.ca.issue("a", usage="both")), [server, client])

    def test_expired(self):
        cert = cryptographyOf(self.ca.issue("a", expired=True))
        self.assertLess(cert.not_valid_after_utc, datetime.datetime.now(datetime.timezone.utc))

    def test_foreignHasTheSameIssuerNameButAnotherKey(self):
        cert = cryptographyOf(self.ca.foreign("a"))
        ours = cryptographyOf(self.ca.certificate)
        self.assertEqual(cert.issuer, ours.subject)
        self.assertRaises(InvalidSignature, cert.verify_directly_issued_by, ours)

    def test_writeFiles(self):
        cert = self.ca.issue("a")
        certFile, keyFile = writeFiles(self.mktemp(), "a", cert)
        self.assertEqual(os.path.basename(certFile), "a.crt")
        self.assertEqual(os.path.basename(keyFile), "a.key")
        with open(certFile, "rb") as f:
            self.assertEqual(f.read(), certificatePEM(cert))
