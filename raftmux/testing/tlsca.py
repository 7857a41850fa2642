# -*- test-case-name: raftmux.test.test_sniff_tls -*-
"""
A throw-away certificate authority for tests, minted with ``cryptography``
(EC P-256, so it takes milliseconds), handing out Twisted objects:

    ca = CertificateAuthority()
    server = ca.issue("node1.raft", ipAddresses=["127.0.0.1"])      # PrivateCertificate
    client = ca.issue("node2.raft", client=True)
    serverOptions = ca.serverOptions(server, requireClientCertificate=True)
    clientOptions = ca.clientOptions("127.0.0.1", clientCertificate=client,
                                     acceptableProtocols=[b"h2"])
    ca.certificate.dumpPEM()        # for curl --cacert / openssl -CAfile

Server certificates carry DNS and IP SANs and the serverAuth usage; client
certificates carry the clientAuth usage and their name as a DNS SAN (what
``service_identity.pyopenssl.verify_hostname`` checks on a server).
Never use this outside tests: nothing here is kept secret.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl

_ONE_DAY = datetime.timedelta(days=1)


def _name(commonName):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, commonName="raftmux test CA", days=7):
        now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._days = days
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(_name(commonName))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        self.certificate = ssl.Certificate.loadPEM(
            self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def pem(self):
        """The CA certificate as PEM bytes (write it out for curl/openssl)."""
        return self.certificate.dumpPEM()

    def issue(self, commonName, dnsNames=(), ipAddresses=(), client=False):
        """
        A ``PrivateCertificate`` signed by this CA.  ``commonName`` is also a
        DNS SAN; ``client=True`` makes a client (clientAuth) certificate,
        otherwise a server (serverAuth) one.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName(n) for n in dict.fromkeys((commonName,) + tuple(dnsNames))]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ipAddresses]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + datetime.timedelta(days=self._days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        return ssl.PrivateCertificate.loadPEM(
            _pem(key) + cert.public_bytes(serialization.Encoding.PEM))

    def serverOptions(self, certificate=None, requireClientCertificate=False,
                      acceptableProtocols=None):
        """
        ``CertificateOptions`` for a server.  Without ``certificate`` one is
        issued for ``localhost`` with IP SAN 127.0.0.1.  ALPN normally comes
        from the wrapped factory (``IProtocolNegotiationFactory``), so leave
        ``acceptableProtocols`` unset unless the factory does not provide it.
        """
        if certificate is None:
            certificate = self.issue("localhost", ipAddresses=["127.0.0.1"])
        kwargs = {}
        if requireClientCertificate:
            kwargs["trustRoot"] = self.certificate
        if acceptableProtocols is not None:
            kwargs["acceptableProtocols"] = acceptableProtocols
        return ssl.CertificateOptions(
            privateKey=certificate.privateKey.original,
            certificate=certificate.original, **kwargs)

    def clientOptions(self, hostname="127.0.0.1", clientCertificate=None,
                      acceptableProtocols=None):
        """``optionsForClientTLS`` trusting only this CA."""
        return ssl.optionsForClientTLS(
            hostname, trustRoot=self.certificate, clientCertificate=clientCertificate,
            acceptableProtocols=acceptableProtocols)
