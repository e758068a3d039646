"""Certificates of a cluster: a CA of its own and the API server's serving certificate.

Everything here works on PEM bytes and takes the current time as an argument; writing the
files (and deciding what is missing) is `podnet.cluster.state.ensure`'s job.

Keys are EC P-256. The CA lives ten years; the serving certificate one year and is re-issued by
`ensure` when it is about to expire, when it no longer matches the CA or when a SAN is missing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences between processes

SERVER_DNS_NAMES: tuple[str, ...] = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class CertKey:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("expected an EC private key")
        return key


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(common_name: str, now: dt.datetime) -> CertKey:
    """A self-signed CA certificate that may sign server and client certificates."""
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podnet"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(_cert_pem(cert), _key_pem(key))


def first_service_ip(service_cidr: str) -> IPAddress:
    """The ClusterIP of the `kubernetes` service: the first address of the service range."""
    net = ipaddress.ip_network(service_cidr, strict=False)
    return net.network_address + 1


def server_ips(service_cidr: str, extra_ips: Iterable[str] = ()) -> list[IPAddress]:
    """IP SANs of the serving certificate, in a stable order and without duplicates."""
    out: list[IPAddress] = []
    for ip in (ipaddress.ip_address("127.0.0.1"), first_service_ip(service_cidr),
               *(ipaddress.ip_address(x) for x in extra_ips)):
        if ip not in out:
            out.append(ip)
    return out


def make_server_cert(
    ca: CertKey,
    *,
    common_name: str,
    dns_names: Iterable[str],
    ips: Iterable[IPAddress],
    now: dt.datetime,
) -> CertKey:
    """A TLS serving certificate for the given names, signed by `ca`."""
    key = _new_key()
    ca_cert = ca.cert
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return CertKey(_cert_pem(cert), _key_pem(key))


def cert_sans(cert: x509.Certificate) -> tuple[set[str], set[IPAddress]]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    ips = {ip for ip in ext.get_values_for_type(x509.IPAddress)
           if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)}
    return set(ext.get_values_for_type(x509.DNSName)), ips


def is_ca_pair(ca: CertKey) -> bool:
    """True when the CA certificate and key parse and belong together."""
    try:
        return ca.cert.public_key() == ca.key.public_key()
    except ValueError:
        return False


def server_cert_ok(
    server: CertKey,
    ca_cert_pem: bytes,
    *,
    dns_names: Iterable[str],
    ips: Iterable[IPAddress],
    now: dt.datetime,
) -> bool:
    """True when `server` can keep serving: it parses, its key matches, the CA signed it, it
    covers every wanted name and does not expire within RENEW_BEFORE."""
    try:
        cert = server.cert
        if cert.public_key() != server.key.public_key():
            return False
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    have_dns, have_ips = cert_sans(cert)
    return set(dns_names) <= have_dns and set(ips) <= have_ips
