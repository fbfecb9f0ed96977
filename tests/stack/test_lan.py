"""``sonalyze up --lan``: the gateway on every interface over HTTPS and WSS with a certificate
kept beside the data directory (or the user's), the other services on loopback; and the
certificate maker itself. Every connection goes to 127.0.0.1 only."""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import signal
import socket
import ssl
import struct
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from sonalyze.protocol import SUBPROTOCOL
from sonalyze.stack import tls
from sonalyze.stack.lan import PublicGateway, lan_addresses, qr_lines
from sonalyze_gateway.settings import GatewaySettings
from tests.conftest import free_port, libpq
from tests.stack.test_up import SERVICES, Stack, sonalyze_up

stack = pytest.mark.stack
FINGERPRINT = r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}"
QR_LINE = re.compile(r"[█▀▄ ]{21,}")


def served_fingerprint(port: int) -> str:
    """The fingerprint of the certificate the server on 127.0.0.1:``port`` presents."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return tls.fingerprint(x509.load_der_x509_certificate(der))


def trusting(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts ``cert_file`` alone, and checks the host name."""
    return ssl.create_default_context(cafile=str(cert_file))


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket of this machine listens on at ``port`` (read from
    /proc, without connecting anywhere)."""
    found = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # LISTEN
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def started_on_lan(run: Stack, port: int) -> dict[str, str]:
    """Wait for the --lan lines; returns the address shown, the fingerprint printed, the QR
    lines and the service URLs."""
    ready = run.wait_for(rf"ready: wss://([\d.]+):{port}/v1/ws", timeout=90)
    address = ready[1]
    run.wait_for(rf"open: https://{re.escape(address)}:{port}/", timeout=5)
    before = len(run.seen)
    printed = run.wait_for(rf"certificate SHA-256 fingerprint: ({FINGERPRINT})", timeout=5)[1]
    qr = [line for line in run.seen[before:-1] if QR_LINE.fullmatch(line)]
    assert len(qr) >= 10, run.seen[before:]
    assert len({len(line) for line in qr}) == 1, "a square block"
    urls = {}
    for _ in SERVICES:
        match = run.wait_for(r"(\w+) (https?://[\d.]+:\d+)", timeout=5)
        urls[match[1]] = match[2]
    assert urls.pop("gateway") == f"https://{address}:{port}"
    return {"address": address, "fingerprint": printed, "qr": "\n".join(qr), **urls}


def stop(run: Stack) -> None:
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(30) == 0


@stack
def test_lan_serves_https_and_wss_and_keeps_its_certificate(
    tmp_path: Path, empty_database: str
) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    args = ("--lan", "--port", str(port), "--database-url", libpq(empty_database))
    with sonalyze_up(*args, "--data-dir", str(data_dir)) as run:
        run.wait_for(rf"certificate: made a self-signed one in {tmp_path}/pg\.tls for .*", 30)
        shown = started_on_lan(run, port)
        cert_file = tmp_path / "pg.tls" / "cert.pem"
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        assert tls.fingerprint(certificate) == shown["fingerprint"]
        assert served_fingerprint(port) == shown["fingerprint"]
        assert (tmp_path / "pg.tls" / "key.pem").stat().st_mode & 0o777 == 0o600
        assert shown["address"] == (lan_addresses() or ["127.0.0.1"])[0]
        assert shown["address"] in tls.certificate_names(certificate)

        # HTTPS, verified against the printed certificate (which names 127.0.0.1 too).
        ready = httpx.get(f"https://127.0.0.1:{port}/readyz", verify=trusting(cert_file))
        assert ready.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/readyz")  # no plain http beside it
        page = httpx.get(f"https://127.0.0.1:{port}/", verify=trusting(cert_file))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")

        # WSS, the phones' protocol, from a page the gateway served (its own origin).
        with connect(
            f"wss://127.0.0.1:{port}/v1/ws",
            ssl=trusting(cert_file),
            origin=Origin(f"https://127.0.0.1:{port}"),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            open_timeout=20,
        ) as ws:
            ws.send(json.dumps({"v": 1, "type": "hello", "id": "1", "payload": {}}))
            welcome = json.loads(ws.recv(timeout=20))
        assert welcome["type"] == "welcome", welcome
        assert welcome["corr"] == "1"

        # Only the gateway listens beyond loopback.
        assert listening_on(port) == {"0.0.0.0"}
        for name in SERVICES - {"gateway"}:
            match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", shown[name])
            assert match, shown[name]
            assert listening_on(int(match[1])) == {"127.0.0.1"}
            assert httpx.get(f"{shown[name]}/readyz").status_code == 200
        stop(run)
        run.wait_for("stopped", timeout=5)

    with sonalyze_up(*args, "--data-dir", str(data_dir)) as run:
        run.wait_for(rf"certificate: the self-signed one kept in {tmp_path}/pg\.tls for .*", 30)
        again = started_on_lan(run, port)
        assert again["fingerprint"] == shown["fingerprint"]
        assert served_fingerprint(port) == shown["fingerprint"]
        assert again["qr"] == shown["qr"]
        stop(run)


@stack
def test_lan_serves_the_certificate_given(tmp_path: Path, empty_database: str) -> None:
    given, _ = tls.self_signed(tmp_path / "mine", [], "sonalyze.test")
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up(
        "--lan",
        "--port",
        str(port),
        "--database-url",
        libpq(empty_database),
        "--data-dir",
        str(data_dir),
        "--tls-cert",
        str(given.cert_file),
        "--tls-key",
        str(given.key_file),
    ) as run:
        run.wait_for(rf"certificate: {given.cert_file} \(key {given.key_file}\)", 30)
        shown = started_on_lan(run, port)
        if shown["address"] != "127.0.0.1":  # not named by it: the user is told
            assert f"warning: the certificate does not name {shown['address']}; " in "\n".join(
                run.seen
            )
        assert shown["fingerprint"] == given.fingerprint
        assert served_fingerprint(port) == given.fingerprint
        assert not (tmp_path / "pg.tls").exists(), "no certificate of its own was made"
        stop(run)


def refused(tmp_path: Path, *args: str) -> str:
    """``sonalyze up --lan`` with these options: exits 2 having started nothing; its output."""
    data_dir = tmp_path / "pg"
    with sonalyze_up("--port", str(free_port()), "--data-dir", str(data_dir), *args) as run:
        assert run.process.wait(30) == 2
        lines = []
        while True:
            try:
                lines.append(run.lines.get(timeout=1))
            except queue.Empty:
                break
        output = "\n".join(lines)
    assert not data_dir.exists(), "no Postgres was started"
    assert not (tmp_path / "pg.tls").exists(), "no certificate was made"
    assert "starting" not in output
    return output


@stack
def test_lan_refuses_unusable_certificate_options(tmp_path: Path) -> None:
    cert = tls.self_signed(tmp_path / "a", [], "a.test")[0]
    other = tls.self_signed(tmp_path / "b", [], "b.test")[0]
    output = refused(tmp_path, "--lan", "--tls-cert", str(cert.cert_file))
    assert "error: --tls-cert needs --tls-key" in output
    output = refused(tmp_path, "--lan", "--tls-key", str(cert.key_file))
    assert "error: --tls-key needs --tls-cert" in output
    output = refused(tmp_path, "--tls-cert", str(cert.cert_file), "--tls-key", str(cert.key_file))
    assert "error: --tls-cert and --tls-key go with --lan" in output
    missing = tmp_path / "missing.pem"
    output = refused(tmp_path, "--lan", "--tls-cert", str(missing), "--tls-key", str(missing))
    assert f"error: cannot read the certificate {missing}: No such file or directory" in output
    output = refused(
        tmp_path, "--lan", "--tls-cert", str(cert.cert_file), "--tls-key", str(other.key_file)
    )
    assert f"error: the key {other.key_file} does not belong to the certificate" in output


@stack
def test_up_on_loopback_prints_the_web_app_address(empty_database: str) -> None:
    port = free_port()
    with sonalyze_up("--port", str(port), "--database-url", libpq(empty_database)) as run:
        run.wait_for(rf"ready: ws://127\.0\.0\.1:{port}/v1/ws", timeout=90)
        assert re.fullmatch(rf"open: http://127\.0\.0\.1:{port}/", run.lines.get(timeout=5))
        run.wait_for(rf"gateway http://127\.0\.0\.1:{port}", timeout=5)
        assert listening_on(port) == {"127.0.0.1"}
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert not any("fingerprint" in line or QR_LINE.fullmatch(line) for line in run.seen)
        stop(run)


# The certificate maker.

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)


def test_a_self_signed_certificate_names_this_machine_and_lives_397_days(tmp_path: Path) -> None:
    made, fresh = tls.self_signed(tmp_path, ["192.0.2.10", "198.51.100.7"], "Bench-PC", NOW)
    assert fresh
    certificate = made.certificate
    assert made.names() == {"192.0.2.10", "198.51.100.7", "bench-pc", "localhost", "127.0.0.1"}
    assert certificate.not_valid_before_utc <= NOW < certificate.not_valid_after_utc
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=397)
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(FINGERPRINT, made.fingerprint)
    assert made.fingerprint == tls.fingerprint(
        x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    )


def test_a_self_signed_certificate_is_kept_while_it_fits(tmp_path: Path) -> None:
    first, _ = tls.self_signed(tmp_path, ["192.0.2.10"], "bench", NOW)
    later = NOW + dt.timedelta(days=300)
    kept, fresh = tls.self_signed(tmp_path, ["192.0.2.10"], "bench", later)
    assert not fresh
    assert kept.fingerprint == first.fingerprint
    # Fewer addresses than it names still fit, and so does another interface behind the one
    # shown (a container bridge that came up).
    assert tls.self_signed(tmp_path, [], "bench", later)[0].fingerprint == first.fingerprint
    bridge = tls.self_signed(tmp_path, ["192.0.2.10", "172.17.0.1"], "bench", later)
    assert bridge[0].fingerprint == first.fingerprint and not bridge[1]


@pytest.mark.parametrize(
    ("addresses", "hostname", "days"),
    [
        (["192.0.2.11"], "bench", 0),  # the LAN address changed
        (["192.0.2.11", "192.0.2.10"], "bench", 0),  # another interface is the one shown
        (["192.0.2.10"], "renamed", 0),
        (["192.0.2.10"], "bench", 397),  # expired
        (["192.0.2.10"], "bench", 396.5),  # about to
    ],
)
def test_a_self_signed_certificate_is_made_again_when_it_no_longer_fits(
    tmp_path: Path, addresses: list[str], hostname: str, days: float
) -> None:
    first, _ = tls.self_signed(tmp_path, ["192.0.2.10"], "bench", NOW)
    renewed, fresh = tls.self_signed(tmp_path, addresses, hostname, NOW + dt.timedelta(days))
    assert fresh
    assert renewed.fingerprint != first.fingerprint
    assert set(addresses) | {hostname} <= renewed.names()


def test_a_broken_kept_certificate_is_made_again(tmp_path: Path) -> None:
    first, _ = tls.self_signed(tmp_path, [], "bench", NOW)
    (tmp_path / "key.pem").write_text("not a key")
    renewed, fresh = tls.self_signed(tmp_path, [], "bench", NOW)
    assert fresh
    assert renewed.fingerprint != first.fingerprint


def test_given_files_that_cannot_serve_are_refused_with_the_reason(tmp_path: Path) -> None:
    good = tls.self_signed(tmp_path / "a", [], "a")[0]
    other = tls.self_signed(tmp_path / "b", [], "b")[0]
    assert tls.load(good.cert_file, good.key_file).fingerprint == good.fingerprint
    with pytest.raises(tls.TlsError, match=r"cannot read the certificate .*: No such file"):
        tls.load(tmp_path / "nothing.pem", good.key_file)
    with pytest.raises(tls.TlsError, match=r"cannot read the key .*: No such file"):
        tls.load(good.cert_file, tmp_path / "nothing.pem")
    with pytest.raises(tls.TlsError, match="holds no PEM certificate"):
        tls.load(good.key_file, good.key_file)
    with pytest.raises(tls.TlsError, match="holds no PEM private key"):
        tls.load(good.cert_file, good.cert_file)
    with pytest.raises(tls.TlsError, match="does not belong to the certificate"):
        tls.load(good.cert_file, other.key_file)
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(good.key_file.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(tls.TlsError, match="is encrypted; give an unencrypted key"):
        tls.load(good.cert_file, encrypted)


def test_lan_addresses_are_ipv4_and_not_loopback() -> None:
    for address in lan_addresses():
        assert socket.inet_aton(address)
        assert not address.startswith(("127.", "169.254."))


def test_the_qr_code_is_a_block_of_text() -> None:
    lines = qr_lines("https://192.0.2.10:8000/")
    assert len(lines) >= 10
    assert all(QR_LINE.fullmatch(line) for line in lines)


def test_the_gateway_takes_both_tls_files_or_neither(tmp_path: Path) -> None:
    made = tls.self_signed(tmp_path, [], "bench")[0]
    both = GatewaySettings(tls_cert_file=made.cert_file, tls_key_file=made.key_file)
    assert both.tls_cert_file == made.cert_file
    assert GatewaySettings().tls_cert_file is None
    with pytest.raises(ValidationError, match="set both SONALYZE_TLS_CERT_FILE and"):
        GatewaySettings(tls_cert_file=made.cert_file)
    with pytest.raises(ValidationError, match="set both SONALYZE_TLS_CERT_FILE and"):
        GatewaySettings(tls_key_file=made.key_file)


def test_the_gateway_knows_the_names_its_certificate_serves(tmp_path: Path) -> None:
    files, _ = tls.self_signed(tmp_path, ["192.0.2.10"], "bench", NOW)
    env = PublicGateway("0.0.0.0", "192.0.2.10", 8443, files).env()
    assert json.loads(env["SONALYZE_APP_HOSTS"]) == ["bench", "localhost"]
