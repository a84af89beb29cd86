"""Download over HTTP on the Unix port (firmware/ota/http.py + updater)
from `ihd ota serve`, with connections dropped at random points,
stalled, a server without Range support, and a refused image."""

from __future__ import annotations

import datetime
import os
import random
import socket
import ssl
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

HERE = Path(__file__).resolve().parent


# 128 KB on mp32 (firmware frozen, as on the device); the wheel compiles the
# firmware into its heap, and the OTA code (pace checks, key lists, board
# tags) no longer leaves room for the data in 128 KB there.
def heap128() -> str:
    return "128k" if os.environ.get("IHD_MICROPYTHON", "mp32") == "mp32" else "192k"


@pytest.fixture(scope="module")
def served(keys, tmp_path_factory):
    d = tmp_path_factory.mktemp("www")
    (d / "v1.bin").write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    (d / "v2.bin").write_bytes(keys.sign(tool.make_image(size=200_000, version="2.0.0", secure_version=3, seed=4)))
    (d / "c3.bin").write_bytes(keys.sign(tool.make_image(size=1_500_000, chip="esp32c3", secure_version=3)))
    return d


def run_update(mpy, keys, served, srv, name, extra="", cmd_extra=None, heap=None, setup=""):
    heap = heap or heap128()
    data = (served / name).read_bytes()
    cmd = tool.update_command(f"http://127.0.0.1:{srv.server_address[1]}/{name}", data)
    cmd.update(cmd_extra or {})
    code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import asyncio, binascii
import ota_devsim as D
from hal import unix_partition as UP
D.factory({str(served / "v1.bin")!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])
{setup}
ok = asyncio.run(u.run({cmd!r}, timeout_ms=500, backoff_ms=5{extra}))
print(u.installer.v.image.pos if u.installer else -1)  # image bytes verified
print(ok, u.status.state, u.status.percent, u.status.error, (u.status.reason or "-").split(":")[0], UP.ota_state())
"""
    return mpy.run(code, heap=heap, timeout=300).stdout.strip().splitlines()[-2:]


def test_resumes_after_connection_drops_at_random_points(mpy, keys, served):
    size = (served / "v2.bin").stat().st_size
    rnd = random.Random(7)
    cuts = []

    def fault(path, start, end):
        if len(cuts) < 25:
            n = rnd.randrange(0, min(end - start, 30_000))
            cuts.append((start, n))
            return n
        return None

    srv = tool.serve_in_thread(served, fault)
    try:
        pos, out = run_update(mpy, keys, served, srv, "v2.bin")
    finally:
        srv.shutdown()
    assert out == "True rebooting 100 0 - (2, 0)", out
    assert int(pos) < size  # the image part; the rest is padding and signature  # otadata: ota_1 is NEW
    # Every reconnection asked for exactly the bytes not yet received.
    ranges = [r for _, r, _ in srv.requests]
    assert ranges[0] is None
    offsets = [0]
    for start, n in cuts:
        assert start == offsets[-1]
        offsets.append(start + n)
    assert ranges[1:] == [f"bytes={o}-" for o in offsets[1:]]
    assert all(s == 206 for _, _, s in srv.requests[1:])
    assert srv.sent == size  # nothing downloaded twice


def test_stalled_connection_times_out_and_resumes(mpy, keys, served):
    calls = []

    def fault(path, start, end):
        calls.append(start)
        return (5000, 2.0) if len(calls) <= 2 else None

    srv = tool.serve_in_thread(served, fault)
    try:
        _, out = run_update(mpy, keys, served, srv, "v2.bin")
    finally:
        srv.shutdown()
    assert out.startswith("True rebooting 100 0"), out
    assert calls == [0, 5000, 10000]


def test_outage_longer_than_the_fetchers_retries_resumes_later(mpy, keys, served):
    calls = []

    def fault(path, start, end):
        calls.append(start)
        if len(calls) == 1:
            return 50_000  # some progress, then an outage
        return 0 if len(calls) <= 7 else None  # 6 connections that deliver nothing

    srv = tool.serve_in_thread(served, fault)
    try:
        pos, out = run_update(mpy, keys, served, srv, "v2.bin", setup="u.retry_ms = (50,)")
    finally:
        srv.shutdown()
    # The first fetch gave up; the second went on from 50000, not from 0.
    assert out.startswith("True rebooting 100 52 download-failed"), out
    assert calls == [0] + [50_000] * 7


def test_server_without_range_support_restarts_cleanly(mpy, keys, served):
    calls = []

    def fault(path, start, end):
        calls.append(start)
        return 70_001 if len(calls) == 1 else None

    srv = tool.serve_in_thread(served, fault)
    srv.ranges = False
    try:
        _, out = run_update(mpy, keys, served, srv, "v2.bin")
    finally:
        srv.shutdown()
    assert out.startswith("True rebooting 100 0"), out
    assert [s for _, _, s in srv.requests] == [200, 200]  # range ignored: whole file again


def test_refused_image_stops_the_download_early(mpy, keys, served):
    srv = tool.serve_in_thread(served)
    try:
        pos, out = run_update(mpy, keys, served, srv, "c3.bin")
    finally:
        srv.shutdown()
    assert out == "False rejected 0 50 chip-mismatch None", out  # otadata untouched
    assert 24 <= int(pos) <= 1024  # of 1.5 MB: refused at the header, in the first read


def test_new_update_starts_without_the_last_refusal(mpy, keys, served):
    # A refused image, then a good one: while the good one downloads and
    # reboots, the status must not still show the old refusal (error 50,
    # "chip-mismatch"), or the display and cloud would report a fault the
    # device no longer has.
    srv = tool.serve_in_thread(served)
    try:
        data = (served / "c3.bin").read_bytes()
        bad = tool.update_command(f"http://127.0.0.1:{srv.server_address[1]}/c3.bin", data)
        setup = f"print(asyncio.run(u.run({bad!r}, timeout_ms=500, backoff_ms=5)), u.status.error)"
        _, out = run_update(mpy, keys, served, srv, "v2.bin", setup=setup)
    finally:
        srv.shutdown()
    assert out == "True rebooting 100 0 - (2, 0)", out


def test_no_second_image_while_the_first_is_set_to_boot(mpy, keys, served):
    # After commit the device resets within seconds (REBOOTING). A second
    # image in that window would erase the slot just set to boot: refused,
    # otadata unchanged; the first image still boots.
    srv = tool.serve_in_thread(served)
    try:
        setup = f"D.install(u, {str(served / 'v2.bin')!r})\nprint('before', UP.ota_state(), u.status.state)"
        _, out = run_update(mpy, keys, served, srv, "v2.bin", setup=setup)
    finally:
        srv.shutdown()
    assert out == "False rebooting 100 0 busy (2, 0)", out


def test_wrong_sha256_in_command_fails_without_set_boot(mpy, keys, served):
    srv = tool.serve_in_thread(served)
    try:
        _, out = run_update(mpy, keys, served, srv, "v2.bin", cmd_extra={"sha256": "00" * 32})
    finally:
        srv.shutdown()
    assert out.split()[:5] == ["False", "rejected", "100", "50", "file-hash"], out
    assert out.endswith("None")  # otadata untouched


def test_missing_file_fails_without_retrying(mpy, keys, served):
    srv = tool.serve_in_thread(served)
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/no-such.bin"
        _, out = run_update(mpy, keys, served, srv, "v1.bin", cmd_extra={"url": url})
    finally:
        srv.shutdown()
    assert out.split()[:5] == ["False", "failed", "0", "52", "http-status"], out
    assert out.endswith("None")
    assert [s for _, _, s in srv.requests] == [404]  # permanent: not retried


# The wheel only: its TLS is mbedTLS, as the ESP32 port's. mp32 is built from
# the pinned source tree, which has no mbedTLS, so its ssl is axTLS (RSA
# only, no ECDSA certificates, other cipher suites): not the device's stack.
@pytest.mark.runtimes("wheel")
def test_https_download(mpy, keys, served, tmp_path):
    # TLS only encrypts (no certificate check on the device): authenticity
    # is the image signature's job. A self-signed server must work.
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(k, hashes.SHA256())
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    drops = []

    def fault(path, start, end):
        drops.append(start)
        return 40_000 if len(drops) == 1 else None

    srv = tool.make_server(served, fault=fault)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{srv.server_address[1]}/v2.bin"
        # mbedTLS takes its buffers from the MicroPython heap on the Unix port
        # (on the ESP32 from the IDF heap): a larger cap than plain HTTP.
        _, out = run_update(mpy, keys, served, srv, "v2.bin", cmd_extra={"url": url}, heap="256k")
    finally:
        srv.shutdown()
    assert out == "True rebooting 100 0 - (2, 0)", out
    assert drops == [0, 40_000]  # resumed over TLS too


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nX-Junk: " + b"A" * 100_000,  # endless header line
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xff\xfe\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100 + b"\r\n",
        b"",
    ],
)
def test_hostile_server_fails_cleanly(mpy, keys, served, reply):
    # A raw TCP peer answering nonsense: retried, then a clean failure
    # (OTA_FAILED), never a crash or unbounded allocation, slot untouched.
    lsock = socket.create_server(("127.0.0.1", 0))
    conns = []

    def serve():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            conns.append(c)
            try:
                c.recv(4096)
                c.sendall(reply)
            except OSError:
                pass
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{lsock.getsockname()[1]}/v2.bin"

        class Srv:  # run_update only needs the port for its default URL
            server_address = lsock.getsockname()

        _, out = run_update(mpy, keys, served, Srv, "v2.bin", cmd_extra={"url": url}, setup="u.retry_ms = ()")
    finally:
        lsock.close()
    assert out.split()[:5] == ["False", "failed", "0", "52", "download-failed"], out
    assert out.endswith("None")
    assert len(conns) == 6  # first try + 5 retries without progress
