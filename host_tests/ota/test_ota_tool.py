"""ihd ota: CLI, the HTTP server's Range semantics, and the "ota"
command from the host payload through the collector's queue to the
firmware's parser and updater."""

from __future__ import annotations

import http.client
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

HERE = Path(__file__).resolve().parent


# 128 KB on mp32 (firmware frozen, as on the device); the wheel compiles the
# firmware into its heap, and the OTA code (pace checks, key lists, board
# tags) no longer leaves room for the data in 128 KB there.
def heap128() -> str:
    return "128k" if os.environ.get("IHD_MICROPYTHON", "mp32") == "mp32" else "192k"


OTA = [sys.executable, "-m", "ihd.ota"]


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*OTA, *map(str, args)], capture_output=True, text=True)


def test_cli_keygen_digest_make_sign_verify(tmp_path):
    key = tmp_path / "k.pem"
    p = cli("keygen", key)
    assert p.returncode == 0, p.stderr
    digest = cli("digest", key).stdout.strip()
    assert digest in p.stdout and len(digest) == 64
    again = cli("keygen", key)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    made = cli("make-image", "-o", tmp_path / "a.bin", "--size", 30000, "--version", "3.1", "--secure-version", 2)
    assert made.returncode == 0, made.stderr
    # esptool's own image-info reads what make-image wrote
    info = subprocess.run(
        [str(tool.BIN / "esptool"), "--chip", "esp32s3", "image-info", str(tmp_path / "a.bin")],
        capture_output=True,
        text=True,
    ).stdout
    assert "Checksum: " in info and "(valid)" in info and "App version: 3.1" in info and "Secure version: 2" in info
    assert cli("sign", "-k", key, "-o", tmp_path / "s.bin", tmp_path / "a.bin").returncode == 0
    ok = cli("verify", "--trusted-key-digest", digest, "--min-secure-version", 2, tmp_path / "s.bin")
    shown = "image: board esp32s3-eink29, project micropython, version 3.1, secure_version 2"
    assert (ok.returncode, ok.stdout) == (0, f"OK\n{shown}\n")
    low = cli("verify", "--trusted-key-digest", digest, "--min-secure-version", 3, tmp_path / "s.bin")
    assert low.returncode == 1 and low.stdout.startswith("REJECT: secure-version: ")
    bad = cli("verify", "--trusted-key-digest", "xyz", tmp_path / "s.bin")
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr


@pytest.fixture
def server(tmp_path):
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 40)
    srv = tool.serve_in_thread(tmp_path)
    yield srv
    srv.shutdown()


def get(srv, path, **headers):
    c = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_server_ranges(server):
    data = bytes(range(256)) * 40
    r, body = get(server, "/f.bin")
    assert r.status == 200 and body == data and r.getheader("Accept-Ranges") == "bytes"
    etag = r.getheader("ETag")
    r, body = get(server, "/f.bin", Range="bytes=1000-")
    assert r.status == 206 and body == data[1000:]
    assert r.getheader("Content-Range") == f"bytes 1000-{len(data) - 1}/{len(data)}"
    r, body = get(server, "/f.bin", Range="bytes=10-19", **{"If-Range": etag})
    assert r.status == 206 and body == data[10:20]
    r, body = get(server, "/f.bin", Range="bytes=10-", **{"If-Range": '"changed"'})
    assert r.status == 200 and body == data  # a different file: whole again
    r, _ = get(server, "/f.bin", Range=f"bytes={len(data)}-")
    assert r.status == 416
    r, _ = get(server, "/../../etc/passwd")
    assert r.status == 404


def test_payload_round_trip_through_collector_to_firmware_parser(tmp_path, mpy, keys, signed):
    img = tmp_path / "s.bin"
    img.write_bytes(signed)
    sys.path.insert(0, str(tool.ROOT / "tools"))
    from ihd.collector import ingest as collector

    db = tmp_path / "c.sqlite"
    collector.Collector(db).add_device(4097, b"k" * 32, 0)
    url = "http://10.0.0.2:8070/ihd/s.bin"
    p = cli("request-update", "--device", 4097, "--url", url, "--db", db, img)
    assert p.returncode == 0, p.stderr
    assert "queued for device 4097" in p.stdout
    kind, payload = sqlite3.connect(db).execute("SELECT kind, payload FROM commands").fetchone()
    assert kind == 2 == collector.wire.CMD_OTA
    cmd = tool.update_command(url, signed)
    assert payload == tool.command_payload(cmd)
    out = mpy.run(
        f"from ota import command\nprint(sorted(command.parse(bytes.fromhex({payload.hex()!r})).items()))"
    ).stdout.strip()
    assert out == str(sorted(cmd.items()))
    assert cmd["version"] == "2.0.0" and cmd["secure_version"] == 3 and cmd["size"] == len(signed)
    unknown = cli("request-update", "--device", 9, "--url", url, "--db", db, img)
    assert unknown.returncode == 2 and "not registered" in unknown.stderr


def test_firmware_rejects_malformed_payloads(mpy, keys, signed):
    good = tool.command_payload(tool.update_command("http://h/x.bin", signed))
    bad = [
        b"",
        b"\x03" + good[1:],  # unknown format (1: image, 2: key list)
        good[:-1],  # url cut
        good + b"x",  # trailing byte
        good.replace(b"http://", b"ftp://h"),
        good[:1] + (4097).to_bytes(4, "big") + good[5:],  # size not whole sectors
    ]
    code = "from ota import command\n"
    for b in bad:
        code += f"try:\n    command.parse({b!r})\n    print('accepted')\n"
        code += "except command.CommandError as e:\n    print(e)\n"
    lines = mpy.run(code).stdout.strip().splitlines()
    assert len(lines) == len(bad) and all(line.startswith("bad-command: ") for line in lines), lines


def test_on_command_updates_in_background_and_resets(mpy, keys, tmp_path):
    (tmp_path / "v1.bin").write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    v2 = keys.sign(tool.make_image(size=30_000, version="2.0.0", secure_version=3, seed=8))
    (tmp_path / "v2.bin").write_bytes(v2)
    srv = tool.serve_in_thread(tmp_path)
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v2.bin"
        payload = tool.command_payload(tool.update_command(url, v2))
        code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import asyncio, binascii
import ota_devsim as D
D.factory({str(tmp_path / "v1.bin")!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])
u.reset_delay_ms = 10
resets = []
async def main():
    print(u.on_command(b"junk"))
    print(u.on_command({payload!r}, reset=resets.append))
    print(u.on_command({payload!r}, reset=resets.append))   # busy
    while not resets:
        await asyncio.sleep_ms(10)
asyncio.run(main())
print(resets, u.status.state, u.status.version, u.status.as_dict()["percent"])
"""
        out = mpy.run(code, heap=heap128()).stdout.strip().splitlines()
    finally:
        srv.shutdown()
    assert out == ["2", "0", "3", "['ota'] rebooting 2.0.0 100"]
