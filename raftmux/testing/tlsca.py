# -*- test-case-name: raftmux.test.test_tls_config -*-
"""
A throw-away certificate authority for tests, minted with ``cryptography``
(EC P-256, so it takes milliseconds), handing out Twisted objects:

    ca = CertificateAuthority()
    server = ca.issue("node1.raft", ipAddresses=["127.0.0.1"])      # PrivateCertificate
    client = ca.issue("node2.raft", client=True)
    peer = ca.issue("node3.raft", ipAddresses=["127.0.0.1"], usage="both")
    serverOptions = ca.serverOptions(server, requireClientCertificate=True)
    clientOptions = ca.clientOptions("127.0.0.1", clientCertificate=client,
                                     acceptableProtocols=[b"h2"])
    ca.certificate.dumpPEM()        # for curl --cacert / openssl -CAfile

and, for code configured with files (``raftmux.tls.TLSInfo``, curl, openssl):

    caFile = ca.writeCAFile(directory)
    certFile, keyFile = writeFiles(directory, "node1", server)
    info = ca.tlsInfo(directory, "node1", server, clientCertAuth=True)

The bad certificates refusal tests need: ``ca.issue(..., expired=True)``
(validity ended yesterday), ``ca.foreign(...)`` (signed by another CA with
the same name), ``ca.issue("node1.raft")`` without ``ipAddresses`` (no SAN
for 127.0.0.1), and ``usage="server"`` / ``usage="client"`` certificates
presented in the other role.  ``ca.intermediate()`` makes a sub-CA, for
certificate files that carry a chain.

Server certificates carry DNS and IP SANs and the serverAuth usage; client
certificates carry the clientAuth usage and their name as a DNS SAN (what
``service_identity.pyopenssl.verify_hostname`` checks on a server).
Never use this outside tests: nothing here is kept secret.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl

__all__ = ["CertificateAuthority", "writeFiles", "certificatePEM", "privateKeyPEM"]

_ONE_DAY = datetime.timedelta(days=1)

_USAGES = {
    "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "both": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
}


def _name(commonName):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificatePEM(certificate):
    """The PEM of a Twisted ``Certificate``/``PrivateCertificate`` (certificate only)."""
    return certificate.original.to_cryptography().public_bytes(serialization.Encoding.PEM)


def privateKeyPEM(certificate):
    """The unencrypted PKCS#8 PEM of a ``PrivateCertificate``'s key."""
    return _pem(certificate.privateKey.original.to_cryptography_key())


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def writeFiles(directory, name, certificate, chain=()):
    """
    Write ``certificate`` (a ``PrivateCertificate``) as ``<name>.crt`` and its
    key as ``<name>.key`` in ``directory`` (created if missing); ``chain``
    (Twisted ``Certificate``s, e.g. an intermediate CA) is appended to the
    certificate file.  Returns ``(certFile, keyFile)``.
    """
    os.makedirs(directory, exist_ok=True)
    certFile = os.path.join(directory, name + ".crt")
    keyFile = os.path.join(directory, name + ".key")
    _write(certFile, certificatePEM(certificate) + b"".join(certificatePEM(c) for c in chain))
    _write(keyFile, privateKeyPEM(certificate))
    return certFile, keyFile


class CertificateAuthority:
    """
    A self-signed CA that issues server and client certificates; with
    ``issuer`` it is an intermediate CA signed by that one.
    """

    def __init__(self, commonName: str = "raftmux test CA", days: int = 7,
                 issuer: CertificateAuthority | None = None) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._days = days
        self.commonName = commonName
        self.issuer = issuer
        signingKey = self._key if issuer is None else issuer._key
        issuerName = _name(commonName) if issuer is None else issuer._cert.subject
        # The root allows one intermediate below it; an intermediate none.
        pathLength = 1 if issuer is None else 0
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(issuerName)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=pathLength), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False))
        if issuer is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer._key.public_key()), critical=False)
        self._cert: x509.Certificate = builder.sign(signingKey, hashes.SHA256())
        self.certificate = ssl.Certificate.loadPEM(
            self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def pem(self) -> bytes:
        """The CA certificate as PEM bytes (write it out for curl/openssl)."""
        return self.certificate.dumpPEM()

    def issue(self, commonName: str, dnsNames: Iterable[str] = (), ipAddresses: Iterable[str] = (),
              client: bool = False, usage: Any = None, expired: bool = False,
              notBefore: datetime.datetime | None = None,
              notAfter: datetime.datetime | None = None) -> ssl.PrivateCertificate:
        """
        A ``PrivateCertificate`` signed by this CA.  ``commonName`` is also a
        DNS SAN.  ``usage`` is ``"server"`` (serverAuth, the default),
        ``"client"`` (clientAuth; ``client=True`` means the same) or
        ``"both"`` (what a raft peer presents, since it serves and dials).
        ``expired=True`` makes one whose validity ended yesterday;
        ``notBefore``/``notAfter`` (aware datetimes) set the window exactly.
        """
        if usage is None:
            usage = "client" if client else "server"
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            notBefore, notAfter = now - 2 * _ONE_DAY, now - _ONE_DAY
        if notBefore is None:
            notBefore = now - _ONE_DAY
        if notAfter is None:
            notAfter = now + datetime.timedelta(days=self._days)
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [
            x509.DNSName(n) for n in dict.fromkeys((commonName,) + tuple(dnsNames))]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ipAddresses]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore)
            .not_valid_after(notAfter)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(list(_USAGES[usage])), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        return ssl.PrivateCertificate.loadPEM(
            _pem(key) + cert.public_bytes(serialization.Encoding.PEM))

    def foreign(self, commonName, **kwargs):
        """
        Like ``issue``, but signed by a different CA that has this CA's name:
        the issuer name matches, the signature does not.
        """
        impostor = CertificateAuthority(self.commonName, days=self._days)
        return impostor.issue(commonName, **kwargs)

    def intermediate(self, commonName: str = "raftmux test intermediate CA",
                     ) -> CertificateAuthority:
        """A CA signed by this one (chains: leaf, intermediate, root)."""
        return CertificateAuthority(commonName, days=self._days, issuer=self)

    def writeCAFile(self, directory: str, name: str = "ca") -> str:
        """Write this CA's certificate as ``<name>.crt`` in ``directory``; returns the path."""
        os.makedirs(directory, exist_ok=True)
        return _write(os.path.join(directory, name + ".crt"), self.pem)

    def tlsInfo(self, directory, name, certificate, role="peer", **kwargs):
        """
        Write ``certificate`` and this CA to ``directory`` and return a
        ``raftmux.tls.TLSInfo`` naming the files; ``kwargs`` go to ``TLSInfo``
        (``clientCertAuth``, ``allowedCN``, ``allowedHostnames``).  Chains up
        to a root CA are written into the certificate file, and the root is
        the trusted CA.
        """
        from raftmux.tls import TLSInfo

        chain, root = [], self
        while root.issuer is not None:
            chain.append(root.certificate)
            root = root.issuer
        certFile, keyFile = writeFiles(directory, name, certificate, chain)
        return TLSInfo(certFile=certFile, keyFile=keyFile,
                       trustedCAFile=root.writeCAFile(directory, name + "-ca"),
                       role=role, **kwargs)

    def serverOptions(self, certificate: ssl.PrivateCertificate | None = None,
                      requireClientCertificate: bool = False,
                      acceptableProtocols: Sequence[bytes] | None = None) -> Any:
        """
        ``CertificateOptions`` for a server.  Without ``certificate`` one is
        issued for ``localhost`` with IP SAN 127.0.0.1.  ALPN normally comes
        from the wrapped factory (``IProtocolNegotiationFactory``), so leave
        ``acceptableProtocols`` unset unless the factory does not provide it.
        """
        if certificate is None:
            certificate = self.issue("localhost", ipAddresses=["127.0.0.1"])
        kwargs: dict[str, Any] = {}
        if requireClientCertificate:
            kwargs["trustRoot"] = self.certificate
        if acceptableProtocols is not None:
            kwargs["acceptableProtocols"] = acceptableProtocols
        return ssl.CertificateOptions(
            privateKey=certificate.privateKey.original,
            certificate=certificate.original, **kwargs)

    def clientOptions(self, hostname: str = "127.0.0.1",
                      clientCertificate: ssl.PrivateCertificate | None = None,
                      acceptableProtocols: Sequence[bytes] | None = None) -> Any:
        """``optionsForClientTLS`` trusting only this CA."""
        return ssl.optionsForClientTLS(
            hostname, trustRoot=self.certificate, clientCertificate=clientCertificate,
            acceptableProtocols=acceptableProtocols)
