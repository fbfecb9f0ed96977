"""Where ``sonalyze up`` serves the gateway: on loopback over http, or with ``--lan`` on every
interface over HTTPS and WSS, at this machine's LAN address, shown with a QR code.

The LAN address is read from the network interfaces: nothing is sent to any other host.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import ipaddress
import json
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import segno

from sonalyze.stack.processes import Console
from sonalyze.stack.tls import TlsFiles, is_ip, load, self_signed, tls_dir, wanted_names

LOOPBACK = "127.0.0.1"
# Linux ioctls (linux/sockios.h, linux/if.h): an interface's flags and its IPv4 address.
_SIOCGIFFLAGS, _SIOCGIFADDR = 0x8913, 0x8915
_IFF_UP, _IFF_LOOPBACK = 0x1, 0x8
# Interfaces of containers and virtual machines on this machine, which phones do not reach.
_VIRTUAL = ("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "cni", "flannel", "podman")
# A documentation address (RFC 5737): connecting a UDP socket to it only asks the kernel which
# local address its route leaves from; no packet is sent.
_ANY_REMOTE = ("192.0.2.1", 9)


def lan_addresses() -> list[str]:
    """This machine's non-loopback, non-link-local IPv4 addresses, the one likeliest to
    reach phones first (private addresses of physical interfaces before the rest)."""
    found = _interface_addresses() if sys.platform.startswith("linux") else _routed_address()
    usable = []
    for name, address in found:
        ip = ipaddress.IPv4Address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast):
            usable.append((name.startswith(_VIRTUAL), not ip.is_private, address))
    ordered = [address for *_, address in sorted(usable, key=lambda u: u[:2])]
    return list(dict.fromkeys(ordered))


def _interface_addresses() -> list[tuple[str, str]]:
    """``(interface, IPv4 address)`` of every interface that is up and not loopback (Linux:
    read with ioctls, in interface order)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[16:18])[0]
                if not flags & _IFF_UP or flags & _IFF_LOOPBACK:
                    continue
                address = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFADDR, request)[20:24])
            except OSError:  # no IPv4 address on this interface
                continue
            found.append((name, address))
    return found


def _routed_address() -> list[tuple[str, str]]:
    """Elsewhere than Linux: the local address the default route leaves from, if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(_ANY_REMOTE)  # UDP: sets the peer, sends nothing
        except OSError:
            return []
        return [("", str(sock.getsockname()[0]))]


@dataclass(frozen=True)
class PublicGateway:
    """The gateway as phones reach it: bound to ``bind_host``, shown at ``address``."""

    bind_host: str
    address: str
    port: int
    tls: TlsFiles | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.address}:{self.port}/v1/ws"

    def env(self) -> dict[str, str]:
        """The gateway's settings for this: where it binds, and its certificate."""
        env = {"SONALYZE_HOST": self.bind_host}
        if self.tls is not None:
            env["SONALYZE_TLS_CERT_FILE"] = str(self.tls.cert_file)
            env["SONALYZE_TLS_KEY_FILE"] = str(self.tls.key_file)
            # The names phones may open the app under: the certificate's (IP addresses are
            # always the gateway's own).
            names = sorted(n for n in self.tls.names() if not is_ip(n))
            env["SONALYZE_APP_HOSTS"] = json.dumps(names)
        return env

    def announce(self, console: Console) -> None:
        """The lines that say where to connect, once everything is ready."""
        console.line(f"ready: {self.ws_url}")
        console.line(f"open: {self.base_url}/")
        if self.tls is not None:
            for line in qr_lines(f"{self.base_url}/"):
                console.line(line)
            console.line(f"certificate SHA-256 fingerprint: {self.tls.fingerprint}")


def qr_lines(url: str) -> list[str]:
    """``url`` as a QR code in text (two rows of modules per line), to scan off a terminal."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue().splitlines()


def loopback_gateway(port: int) -> PublicGateway:
    """The gateway on 127.0.0.1 over http (a secure context on this machine only)."""
    return PublicGateway(LOOPBACK, LOOPBACK, port)


def lan_gateway(
    port: int,
    data_dir: Path,
    cert_file: Path | None,
    key_file: Path | None,
    console: Console,
) -> PublicGateway:
    """The gateway on every interface over HTTPS, with the given certificate or the kept
    self-signed one; says what it found and chose. :class:`~sonalyze.stack.tls.TlsError` if
    the given files cannot be used."""
    addresses = lan_addresses()
    if not addresses:
        console.line(f"lan: no LAN (non-loopback IPv4) address found; showing {LOOPBACK}")
    elif len(addresses) > 1:
        console.line(f"lan: addresses {', '.join(addresses)}; showing {addresses[0]}")
    address = addresses[0] if addresses else LOOPBACK
    hostname = socket.gethostname()
    if cert_file is not None and key_file is not None:
        tls = load(cert_file.resolve(), key_file.resolve())
        console.line(f"certificate: {tls.cert_file} (key {tls.key_file})")
        _warn_about(tls, address, console)
    else:
        directory = tls_dir(data_dir)
        tls, made = self_signed(directory, addresses, hostname)
        until = tls.certificate.not_valid_after_utc.date().isoformat()
        names = ", ".join(sorted(wanted_names(addresses, hostname)))
        verb = "made a self-signed one" if made else "the self-signed one kept"
        console.line(f"certificate: {verb} in {directory} for {names}, valid until {until}")
    return PublicGateway("0.0.0.0", address, port, tls)


def _warn_about(tls: TlsFiles, address: str, console: Console) -> None:
    """Say what phones will object to in a certificate the user gave."""
    now = dt.datetime.now(dt.UTC)
    if not tls.certificate.not_valid_before_utc <= now < tls.certificate.not_valid_after_utc:
        console.line("warning: the certificate is not valid now (expired or not yet valid)")
    if address not in tls.names():
        console.line(f"warning: the certificate does not name {address}; browsers will warn")
