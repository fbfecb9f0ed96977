"""The gateway's certificate for ``sonalyze up --lan``: the user's own, checked, or a
self-signed one made once and kept beside the data directory.

Phones only give a page the microphone in a secure context, and plain http is one on loopback
alone, so a phone on the LAN needs HTTPS (and WSS). A self-signed certificate is accepted once
on each phone; it is reused as long as it is valid and names this machine's current addresses,
so that phones keep trusting it across restarts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Phones refuse server certificates valid for longer than 398 days (Apple's and Chrome's rule).
VALIDITY = dt.timedelta(days=397)
# A certificate this close to its end is made again rather than expire while the stack runs.
RENEW_BEFORE = dt.timedelta(days=1)
# Clocks of phones may run a little behind this machine's.
BACKDATE = dt.timedelta(minutes=5)


class TlsError(Exception):
    """A certificate or key that cannot be used; the message says why, for the user."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate and its key, checked to belong together."""

    cert_file: Path
    key_file: Path
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, as browsers show it: ``AB:CD:...``."""
        return fingerprint(self.certificate)

    def names(self) -> set[str]:
        """The IP addresses and DNS names the certificate is valid for (lowercase)."""
        return certificate_names(self.certificate)


def fingerprint(certificate: x509.Certificate) -> str:
    """Colon-separated uppercase hex of the SHA-256 of the DER certificate."""
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()


def certificate_names(certificate: x509.Certificate) -> set[str]:
    """The subject alternative names (IP addresses and DNS names) of ``certificate``."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return ips | {name.lower() for name in san.get_values_for_type(x509.DNSName)}


def tls_dir(data_dir: Path) -> Path:
    """Where the self-signed certificate is kept: ``<data_dir>.tls/`` beside the data."""
    return data_dir.with_name(data_dir.name + ".tls")


def load(cert_file: Path, key_file: Path) -> TlsFiles:
    """The user's certificate (PEM, the server's first, then its chain) and unencrypted key
    (PEM); :class:`TlsError` if either is unreadable or they do not belong together."""
    try:
        cert_pem = cert_file.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the certificate {cert_file}: {exc.strerror}") from exc
    try:
        key_pem = key_file.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the key {key_file}: {exc.strerror}") from exc
    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError as exc:
        raise TlsError(f"{cert_file} holds no PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:  # encrypted: uvicorn would ask for the password on the terminal
        raise TlsError(f"the key {key_file} is encrypted; give an unencrypted key") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"{key_file} holds no PEM private key") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, public) != certificate.public_key().public_bytes(
        pem, public
    ):
        raise TlsError(f"the key {key_file} does not belong to the certificate {cert_file}")
    return TlsFiles(cert_file, key_file, certificate)


def wanted_names(addresses: list[str], hostname: str) -> set[str]:
    """What a certificate of this machine must name: its LAN addresses, its hostname (when
    it can be one), ``localhost`` and 127.0.0.1."""
    names = {*addresses, "localhost", "127.0.0.1"}
    if hostname and hostname.isascii() and " " not in hostname:
        names.add(hostname.lower())
    return names


def self_signed(
    directory: Path, addresses: list[str], hostname: str, now: dt.datetime | None = None
) -> tuple[TlsFiles, bool]:
    """The self-signed certificate in ``directory`` (``cert.pem``, ``key.pem``), made if it is
    missing, unreadable, expired or about to, or does not name the address shown (the first of
    ``addresses``), ``hostname``, ``localhost`` and 127.0.0.1; a new one names every one of
    ``addresses``. Another interface coming up (a container bridge) keeps the certificate, so
    phones are not asked to accept a new one for it. Returns it and whether it was made now."""
    now = now or dt.datetime.now(dt.UTC)
    names = wanted_names(addresses, hostname)
    needed = wanted_names(addresses[:1], hostname)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    try:
        kept = load(cert_file, key_file)
    except TlsError:
        kept = None
    if (
        kept is not None
        and kept.certificate.not_valid_before_utc <= now
        and now + RENEW_BEFORE < kept.certificate.not_valid_after_utc
        and needed <= kept.names()
    ):
        return kept, False
    _make(cert_file, key_file, names, hostname or "localhost", now)
    return load(cert_file, key_file), True


def _make(
    cert_file: Path, key_file: Path, names: set[str], hostname: str, now: dt.datetime
) -> None:
    """Write a new ECDSA P-256 key (mode 0600) and a certificate naming ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Sonalyze on {hostname}"[:64])])
    ips = sorted(n for n in names if is_ip(n))
    dns = sorted(n for n in names if not is_ip(n))
    alt_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(n)) for n in ips]
    alt_names += [x509.DNSName(n) for n in dns]
    start = now - BACKDATE
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_file, key_pem, 0o600)
    _write(cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` at once, created with ``mode``, so no reader sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def is_ip(name: str) -> bool:
    """Whether a certificate's name is an IP address (else a DNS name)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
