# -*- test-case-name: raftmux.test.test_tls_config -*-
"""
Reading a ``TLSInfo``'s files into ``Material``: parsed once with
``cryptography``, checked (readable, PEM, key matches certificate, CA
bundle not empty), and only then handed to OpenSSL, so a bad file is a
``TLSConfigError`` naming the flag and file, never an OpenSSL stack.
"""

import datetime
import os
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from raftmux.tls.errors import TLSConfigError

__all__ = ["Material", "loadMaterial", "fileSignature", "describeCertificate"]


class Material:
    """
    One consistent snapshot of a role's files.

    @ivar certificate: our leaf ``x509.Certificate`` (or ``None``).
    @ivar chain: the certificates after it in the certificate file.
    @ivar key: its private key (or ``None``).
    @ivar authorities: the trusted CA certificates (may be empty).
    """

    def __init__(self, certificate=None, chain=(), key=None, authorities=()):
        self.certificate = certificate
        self.chain = tuple(chain)
        self.key = key
        self.authorities = tuple(authorities)

    def describe(self):
        """``CN=node1, valid until 2026-05-01 12:00 UTC`` for logs."""
        if self.certificate is None:
            return "no certificate"
        return describeCertificate(self.certificate)


def commonName(certificate):
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else ""


def describeCertificate(certificate):
    return "CN=%s, valid until %s" % (
        commonName(certificate), certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC"))


def _read(info, attribute):
    path = getattr(info, attribute)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError("%s %s: cannot read it: %s" % (
            info.flag(attribute), path, e.strerror or e)) from None


def _certificates(info, attribute, data):
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSConfigError("%s %s: holds no PEM certificate" % (
            info.flag(attribute), getattr(info, attribute))) from None


def _key(info, data):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigError("%s %s: the key is encrypted; give it unencrypted" % (
            info.flag("keyFile"), info.keyFile)) from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TLSConfigError("%s %s: not a PEM private key (%s)" % (
            info.flag("keyFile"), info.keyFile, e)) from None


def _publicBytes(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def loadMaterial(info):
    """
    Read and check ``info``'s files; a ``Material``, or ``TLSConfigError``.
    """
    certificate, chain, key, authorities = None, (), None, ()
    if info.certFile:
        certificates = _certificates(info, "certFile", _read(info, "certFile"))
        certificate, chain = certificates[0], certificates[1:]
        key = _key(info, _read(info, "keyFile"))
        if _publicBytes(key.public_key()) != _publicBytes(certificate.public_key()):
            raise TLSConfigError("%s %s does not match %s %s (the key is not the certificate's)"
                                 % (info.flag("keyFile"), info.keyFile,
                                    info.flag("certFile"), info.certFile))
    if info.trustedCAFile:
        authorities = _certificates(info, "trustedCAFile", _read(info, "trustedCAFile"))
    return Material(certificate, chain, key, authorities)


def fileSignature(info):
    """
    What the files look like on disk now (size, mtime, inode per file), so
    a poller can tell a change without reading them; missing files show as
    ``None``.
    """
    signature: list[tuple[Any, ...]] = []
    for path in (info.certFile, info.keyFile, info.trustedCAFile):
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            signature.append((path, None))
        else:
            signature.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(signature)


def isCurrent(certificate, now=None):
    """Is ``now`` inside the certificate's validity window?"""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
