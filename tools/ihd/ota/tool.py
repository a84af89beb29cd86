"""Signed OTA host tool: keys, signing, test images, serving, verifying.

Sub-commands:
  keygen KEYFILE                  RSA-3072 Secure Boot V2 signing key (espsecure)
  digest KEYFILE                  print the key digest devices trust (espsecure)
  sign --keyfile K [-k K2 ..] [--board B] -o OUT IN
                                  tag the image for board B (esp_app_desc_t, docs/ota.md;
                                  default: the tag it has) and sign it (espsecure
                                  sign-data --version 2)
  make-image -o OUT [--size N] [--version V] [--project P] [--secure-version S] [--board B]
                                  build a test ESP-IDF app image (esptool's image writer)
  verify --trusted-key-digest HEX [--board B] IMAGE
                                  run the firmware's own verifier on the MicroPython
                                  Unix port; prints OK or REJECT: <reason>, exit 0 / 1,
                                  then what the image is (board, project, version)
  keylist --list-version N (--key-digest HEX | --key PEM).. -k SIGNER -o OUT
                                  a signed list of trusted key digests that replaces the
                                  device's (firmware/ota/keylist.py; 1..3 keys, the version
                                  above the device's, signed by a key it trusts now)
  serve DIR [--port P]            HTTP server with Range support for OTA downloads
                                  (tools/ihd/ota/server.py)
  request-update --device ID --url URL [--db COLLECTOR.sqlite] IMAGE|KEYLIST
                                  queue the "ota" uplink command (docs/ota.md) in the
                                  collector, which delivers it authenticated; or print it

All cryptography on the host is espsecure's; nothing here signs by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
from ihd.ota.server import make_server, serve_in_thread  # noqa: E402,F401 (the sim and tests start servers through here)

BIN = Path(sys.executable).parent
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (the MicroPython runtime: IHD_MICROPYTHON, mp32 or the wheel)

DEFAULT_PROJECT = "micropython"  # ESP-IDF project name of a MicroPython build
DEFAULT_CHIP = "esp32s3"
DEFAULT_BOARD = "esp32s3-eink29"  # boards/esp32s3_eink29/board.py NAME
DESC_MAGIC = 0xABCD5432
BOARD_TAG = b"IHDB"  # firmware/ota/image.py: esp_app_desc_t reserv2's last 32 bytes
BOARD_OFF = 224  # within esp_app_desc_t
BOARD_RE = re.compile(r"[A-Za-z0-9._-]{1,27}")
SIG_BLOCK_MAGIC = 0xE7  # Secure Boot V2 signature block, first byte (ESP-IDF ets_secure_boot_sig_block_t)


class ToolError(Exception):
    pass


def _espsecure(*args: str) -> str:
    exe = BIN / "espsecure"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "espsecure"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"espsecure {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- keys and signatures (espsecure) -------------------------------------------
def keygen(keyfile: Path) -> None:
    if keyfile.exists():
        raise ToolError(f"{keyfile} exists; refusing to overwrite a signing key")
    if not keyfile.parent.is_dir():
        raise ToolError(f"cannot write {keyfile}: no folder {keyfile.parent} (create it first)")
    # a signing key is the fleet's root of trust: owner-only from the start
    old = os.umask(0o077)
    try:
        _espsecure("generate-signing-key", "--version", "2", "--scheme", "rsa3072", str(keyfile))
    finally:
        os.umask(old)
    os.chmod(keyfile, 0o600)


def need_key(keyfile: Path) -> Path:
    """A signing key file that espsecure can read, or a clear error."""
    if not keyfile.is_file():
        raise ToolError(f"no key file {keyfile} (make one with `ihd ota keygen {keyfile}`)")
    head = keyfile.read_bytes()[:4096]
    if b"-----BEGIN" not in head or b"PRIVATE KEY-----" not in head:
        raise ToolError(f"{keyfile} is not a PEM private key (an RSA-3072 signing key from `ihd ota keygen`)")
    return keyfile


def key_digest(keyfile: Path) -> bytes:
    need_key(keyfile)
    out = keyfile.with_name(keyfile.name + ".digest.tmp")
    try:
        _espsecure("digest-sbv2-public-key", "--keyfile", str(keyfile), "--output", str(out))
        return out.read_bytes()
    finally:
        out.unlink(missing_ok=True)


def sign(keyfiles: list[Path], image: Path, output: Path, board: str | None = None) -> str:
    """Sign `image` for `board` (None: the board it is tagged for); -> the board.
    An untagged image is tagged first (a copy: checksum and SHA-256 redone)."""
    for k in keyfiles:
        need_key(k)
    data = image.read_bytes()
    have = image_info(data)["board"]
    _, sha = _image_layout(data)
    sig_at = (sha + 32 + 4095) // 4096 * 4096
    if len(data) > sig_at and data[sig_at] == SIG_BLOCK_MAGIC:
        raise ToolError(
            f"{image} is already signed (a signature block follows the image at {sig_at:#x}): sign the unsigned"
            " image, with up to 3 keys at once (-k A -k B)"
        )
    if board is None:
        if have is None:
            raise ToolError(f"{image} names no board: give --board NAME (e.g. {DEFAULT_BOARD}, boards/*/board.py NAME)")
        board = have
    elif have is not None and have != board:
        raise ToolError(f"{image} is built for board {have!r}; refusing to sign it for {board!r}")
    src = image
    if have is None:
        src = output.with_name(output.name + ".tagged.tmp")
        src.write_bytes(set_board(data, board))
    args = ["sign-data", "--version", "2"]
    for k in keyfiles:
        args += ["--keyfile", str(k)]
    try:
        _espsecure(*args, "--output", str(output), str(src))
    finally:
        if src != image:
            src.unlink(missing_ok=True)
    return board


def _image_layout(image: bytes) -> tuple[int, int]:
    """(offset of the checksum byte, offset of the appended SHA-256) of an
    ESP-IDF app image with hash_appended (ESP-IDF esp_image_format.h)."""
    if len(image) < 24 or image[0] != 0xE9 or image[23] != 1:
        raise ToolError("not an ESP-IDF app image with an appended SHA-256")
    pos = 24
    for _ in range(image[1]):
        if pos + 8 > len(image):
            raise ToolError("image truncated in its segment headers")
        pos += 8 + struct.unpack_from("<I", image, pos + 4)[0]
    ck = pos + 15 - pos % 16
    if ck + 33 > len(image):
        raise ToolError("image truncated before its checksum and hash")
    return ck, ck + 1


def set_board(image: bytes, board: str) -> bytes:
    """The image with its board tag set (esp_app_desc_t at offset 32), XOR
    checksum and appended SHA-256 recomputed: still valid for esptool."""
    if not BOARD_RE.fullmatch(board):
        raise ToolError(f"board name {board!r}: 1 to 27 characters of A-Z a-z 0-9 . _ -")
    ck, h = _image_layout(image)
    b = bytearray(image)
    at = 32 + BOARD_OFF
    b[at : at + 32] = BOARD_TAG + board.encode().ljust(28, b"\0")
    x = 0xEF
    pos = 24
    for _ in range(b[1]):
        n = struct.unpack_from("<I", b, pos + 4)[0]
        for v in b[pos + 8 : pos + 8 + n]:
            x ^= v
        pos += 8 + n
    b[ck] = x
    b[h : h + 32] = hashlib.sha256(bytes(b[:h])).digest()
    return bytes(b)


# -- test images (esptool's ESP-IDF image writer) -------------------------------
def app_desc(version: str, project: str, secure_version: int, board: str | None = None) -> bytes:
    """esp_app_desc_t, 256 bytes (layout as esptool's _parse_app_info); the
    board tag in the last 32 bytes of reserv2 unless board is None."""

    def field(s: str, n: int) -> bytes:
        b = s.encode()
        if len(b) >= n:
            raise ToolError(f"{s!r} does not fit the {n}-byte field")
        return b.ljust(n, b"\0")

    tag = b"" if board is None else BOARD_TAG + board.encode()
    if board is not None and not BOARD_RE.fullmatch(board):
        raise ToolError(f"board name {board!r}: 1 to 27 characters of A-Z a-z 0-9 . _ -")
    return struct.pack(
        "<II8s32s32s16s16s32s32sHHB3s40s32s",
        DESC_MAGIC,
        secure_version,
        b"",
        field(version, 32),
        field(project, 32),
        field("00:00:00", 16),
        field("Jan  1 2026", 16),
        field("v5.4", 32),
        hashlib.sha256(version.encode()).digest(),
        0,
        99,
        0,
        b"",
        b"",
        tag,
    )


def make_image(
    size: int = 64 * 1024,
    version: str = "1.0.0",
    project: str = DEFAULT_PROJECT,
    secure_version: int = 0,
    chip: str = DEFAULT_CHIP,
    seed: int = 1,
    board: str | None = DEFAULT_BOARD,
) -> bytes:
    """An ESP-IDF app image of about `size` bytes: DROM (app desc first),
    IROM, DRAM and IRAM segments of pseudo-random content."""
    from esptool.bin_image import ELFSection
    from esptool.targets import CHIP_DEFS

    rom = CHIP_DEFS[chip]
    rnd = random.Random(seed)
    flash = max(size - 16 * 1024, 1024) // 8 * 4  # split over DROM and IROM
    img = rom.BOOTLOADER_IMAGE()
    img.flash_mode = 2  # dio
    img.flash_size_freq = 0x30  # 8MB, 80m (S3 coding)
    img.entrypoint = 0x40378000 if chip == "esp32s3" else 0x40080000
    drom = app_desc(version, project, secure_version, board) + rnd.randbytes(flash)
    irom = rnd.randbytes(flash)
    img.segments = [
        ELFSection(b".flash.appdesc", rom.DROM_MAP_START + 0x20, drom, 0),
        ELFSection(b".flash.text", rom.IROM_MAP_START + 0x20 + (len(drom) + 0x20000) // 0x10000 * 0x10000, irom, 0),
        ELFSection(b".dram0.data", 0x3FC88000 if chip == "esp32s3" else 0x3FFB0000, rnd.randbytes(4096), 0),
        ELFSection(b".iram0.text", 0x40378000 if chip == "esp32s3" else 0x40080000, rnd.randbytes(8192), 0),
    ]
    return img.save(None)


# -- verify on the Unix port (the firmware's own verifier) ----------------------
_VERIFY_SNIPPET = """
import sys, binascii
from ota.verify import Policy, Reject, verify_file, CHIP_IDS
a = sys.argv
keys = [binascii.unhexlify(k) for k in a[5].split(",") if k]
pol = Policy(keys, CHIP_IDS[a[2]], a[3], int(a[4]), a[6])
try:
    v = verify_file(a[1], pol)
    print("OK")
except Reject as e:
    print("REJECT: " + e.args[0])
"""


def verify(
    image: Path,
    trusted: list[str],
    chip: str = DEFAULT_CHIP,
    project: str = DEFAULT_PROJECT,
    min_secure_version: int = 0,
    heap: str = "96k",
    board: str = DEFAULT_BOARD,
) -> tuple[bool, str]:
    """Run firmware/ota/verify.py on MicroPython; returns (accepted, line)."""
    for d in trusted:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", d):
            raise ToolError(f"trusted key digest {d!r} is not 64 hex digits")
    env = dict(os.environ, MICROPYPATH=mpruntime.module_path([ROOT / "firmware", ROOT / "boards" / "unix"]))
    cmd = [str(mpruntime.binary()), "-X", f"heapsize={heap}", "-c", _VERIFY_SNIPPET]
    args = [str(image), chip, project, str(min_secure_version), ",".join(trusted), board]
    # `-c` leaves sys.argv[0] as "", so our arguments start at index 1.
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not (line == "OK" or line.startswith("REJECT: ")):
        raise ToolError(f"verifier failed (status {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return line == "OK", line


# -- signed key lists (firmware/ota/keylist.py) ---------------------------------
KEYLIST_MAGIC = b"IHDK"
KEYLIST_MAX = 3


def keylist_body(version: int, digests: list[bytes], allow_empty: bool = False) -> bytes:
    """The 4096-byte signed part of a key list. allow_empty only for tests
    that prove the device refuses what this tool will not make."""
    if not digests and not allow_empty:
        raise ToolError("refusing an empty key list: a device trusting no key could never be updated again")
    if len(digests) > KEYLIST_MAX:
        raise ToolError(f"{len(digests)} keys: a key list holds at most {KEYLIST_MAX}")
    if len(set(digests)) != len(digests):
        raise ToolError("the same key digest is listed twice")
    if not 1 <= version <= 0xFFFFFFFF:
        raise ToolError("--list-version must be 1..4294967295 (above the device's current list)")
    for d in digests:
        if len(d) != 32:
            raise ToolError("a key digest is 32 bytes (64 hex digits)")
    body = KEYLIST_MAGIC + struct.pack("<BBHI", 1, len(digests), 0, version) + b"".join(digests)
    return body.ljust(4096, b"\xff")


def make_keylist(signers: list[Path], version: int, digests: list[bytes], output: Path, allow_empty=False) -> None:
    for k in signers:
        need_key(k)
    src = output.with_name(output.name + ".body.tmp")
    src.write_bytes(keylist_body(version, digests, allow_empty))
    args = ["sign-data", "--version", "2"]
    for k in signers:
        args += ["--keyfile", str(k)]
    try:
        _espsecure(*args, "--output", str(output), str(src))
    finally:
        src.unlink(missing_ok=True)


def keylist_info(data: bytes) -> dict | None:
    """{"version", "digests"} of a key list file, None if it is not one."""
    if len(data) < 12 or data[:4] != KEYLIST_MAGIC:
        return None
    n = data[5]
    digests = [data[12 + 32 * i : 44 + 32 * i] for i in range(n)]
    return {"version": struct.unpack_from("<I", data, 8)[0], "digests": digests}


# -- update command (docs/ota.md) ----------------------------------------------
CMD_OTA = 2  # uplink command kind (firmware/uplink/datagram.py, tools/ihd/uplink/wire.py)
PAYLOAD_FORMAT = 1
PAYLOAD_FORMAT_KEYLIST = 2  # the file is a signed key list


def update_command(url: str, image: bytes) -> dict:
    """The fields of the "ota" command for this signed image (the form
    firmware/ota/command.py parse() returns). The device trusts only the
    signature inside the image; size and sha256 let it refuse a wrong
    download early and resume safely across connections."""
    if not url.startswith(("http://", "https://")):
        raise ToolError(f"update URL must be http:// or https://, not {url!r}")
    if len(image) % 4096:
        raise ToolError("not a signed image: size is not a multiple of 4096 (sign it first)")
    kl = keylist_info(image)
    if kl is not None:
        return {
            "url": url,
            "size": len(image),
            "sha256": hashlib.sha256(image).hexdigest(),
            "secure_version": 0,
            "version": f"keys-{kl['version']}",
            "kind": "keylist",
        }
    info = image_info(image)
    return {
        "url": url,
        "size": len(image),
        "sha256": hashlib.sha256(image).hexdigest(),
        "secure_version": info["secure_version"],
        "version": info["version"],
    }


def command_payload(cmd: dict) -> bytes:
    """Binary payload of uplink command kind 2 (docs/ota.md), big-endian."""
    version = cmd["version"].encode()
    url = cmd["url"].encode()
    if len(version) > 32:
        raise ToolError("version string longer than 32 bytes")
    fmt = PAYLOAD_FORMAT_KEYLIST if cmd.get("kind") == "keylist" else PAYLOAD_FORMAT
    payload = struct.pack(
        ">BI32sIB", fmt, cmd["size"], bytes.fromhex(cmd["sha256"]), cmd["secure_version"], len(version)
    )
    payload += version + struct.pack(">H", len(url)) + url
    if len(payload) > 1160:  # wire.MAX_DGRAM - REPLY_HEAD - TAG - 7: one reply datagram
        raise ToolError(f"command payload of {len(payload)} bytes does not fit a datagram: shorten the URL")
    return payload


def queue_update(db: Path, device: int, payload: bytes) -> int:
    """Queue the command in the collector's database (ihd collector);
    a running collector sends it with its next reply to the device."""
    from ihd.collector import ingest as collector

    if not db.exists():
        raise ToolError(f"collector database {db} does not exist")
    col = collector.Collector(db)
    try:
        return col.queue_command(device, CMD_OTA, payload)
    except (KeyError, ValueError) as e:
        raise ToolError(str(e))


def image_info(image: bytes) -> dict:
    """Version fields of a (signed) app image, read with esptool's parser."""
    import io

    from esptool.bin_image import ESP32FirmwareImage

    try:
        img = ESP32FirmwareImage(io.BytesIO(image))
    except Exception as e:
        raise ToolError(f"not an ESP-IDF app image: {e}")
    desc = img.segments[0].data[:256]
    magic, sv = struct.unpack_from("<II", desc)
    if magic != DESC_MAGIC:
        raise ToolError("image has no esp_app_desc_t in its first segment")
    version = desc[16:48].split(b"\0")[0].decode()
    project = desc[48:80].split(b"\0")[0].decode()
    board = None
    if desc[BOARD_OFF : BOARD_OFF + 4] == BOARD_TAG:
        board = desc[BOARD_OFF + 4 :].split(b"\0")[0].decode(errors="replace")
    return {"version": version, "project": project, "secure_version": sv, "chip_id": img.chip_id, "board": board}


# -- CLI -----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ihd ota", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("keygen", help="new RSA-3072 Secure Boot V2 signing key")
    p.add_argument("keyfile", type=Path)
    p = sub.add_parser("digest", help="print the SHA-256 key digest devices trust")
    p.add_argument("keyfile", type=Path)
    p = sub.add_parser("sign", help="sign an app image (up to 3 keys) for a board")
    p.add_argument("--keyfile", "-k", type=Path, action="append", required=True)
    p.add_argument("--board", help="board the image is for (default: the board it is tagged for)")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.add_argument("image", type=Path)
    p = sub.add_parser("make-image", help="build a test ESP-IDF app image")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.add_argument("--size", type=int, default=64 * 1024, help="approximate size in bytes")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--project", default=DEFAULT_PROJECT)
    p.add_argument("--secure-version", type=int, default=0)
    p.add_argument("--chip", default=DEFAULT_CHIP)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--board", default=DEFAULT_BOARD, help="board tag ('' for none)")
    p = sub.add_parser("verify", help="verify a signed image with the firmware's verifier")
    p.add_argument("--trusted-key-digest", action="append", required=True, metavar="HEX")
    p.add_argument("--chip", default=DEFAULT_CHIP)
    p.add_argument("--project", default=DEFAULT_PROJECT)
    p.add_argument("--min-secure-version", type=int, default=0)
    p.add_argument("--board", default=DEFAULT_BOARD, help="the device's board (board.py NAME)")
    p.add_argument("image", type=Path)
    p = sub.add_parser("keylist", help="make a signed list of trusted key digests")
    p.add_argument("--list-version", type=int, required=True, help="above the device's current list version")
    p.add_argument("--key-digest", action="append", default=[], metavar="HEX", help="a key digest to trust")
    p.add_argument("--key", action="append", default=[], type=Path, metavar="PEM", help="a key to trust")
    p.add_argument("--keyfile", "-k", type=Path, action="append", required=True, help="signing key (trusted now)")
    p.add_argument("--output", "-o", type=Path, required=True)
    p = sub.add_parser("serve", help="serve OTA images over HTTP with Range support")
    p.add_argument("root", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8070)
    p = sub.add_parser("request-update", help="ask a device to update (queued in the collector)")
    p.add_argument("--device", type=int, required=True)
    p.add_argument("--url", required=True, help="where the device downloads IMAGE (e.g. from `ihd ota serve`)")
    p.add_argument("--db", type=Path, help="the collector's SQLite database (ihd collector --db)")
    p.add_argument("--print", action="store_true", help="print the payload hex instead of queueing it")
    p.add_argument("image", type=Path, help="the signed image, as served at --url")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "keygen":
            keygen(a.keyfile)
            print(f"wrote {a.keyfile}; key digest {key_digest(a.keyfile).hex()}")
        elif a.cmd == "digest":
            print(key_digest(a.keyfile).hex())
        elif a.cmd == "sign":
            board = sign(a.keyfile, a.image, a.output, a.board)
            print(f"signed {a.image} for board {board} with {len(a.keyfile)} key(s) -> {a.output}")
        elif a.cmd == "make-image":
            data = make_image(a.size, a.version, a.project, a.secure_version, a.chip, a.seed, a.board or None)
            a.output.write_bytes(data)
            print(f"wrote {a.output}: {len(data)} bytes, {a.project} {a.version} secure_version {a.secure_version}")
        elif a.cmd == "verify":
            ok, line = verify(a.image, a.trusted_key_digest, a.chip, a.project, a.min_secure_version, board=a.board)
            print(line)
            try:
                i = image_info(a.image.read_bytes())
                print(
                    f"image: board {i['board'] or '(none)'}, project {i['project']}, "
                    f"version {i['version']}, secure_version {i['secure_version']}"
                )
            except ToolError:
                pass  # not an app image: the REJECT line says so
            return 0 if ok else 1
        elif a.cmd == "keylist":
            digests = []
            for h in a.key_digest:
                if not re.fullmatch(r"[0-9a-fA-F]{64}", h):
                    raise ToolError(f"key digest {h!r} is not 64 hex digits")
                digests.append(bytes.fromhex(h))
            digests += [key_digest(k) for k in a.key]
            make_keylist(a.keyfile, a.list_version, digests, a.output)
            print(f"wrote {a.output}: key list version {a.list_version}, {len(digests)} key(s):")
            for d in digests:
                print(f"  {d.hex()}")
        elif a.cmd == "serve":
            srv = make_server(a.root, a.port, a.host)
            srv.verbose = True
            print(f"serving {a.root} on http://{a.host}:{srv.server_address[1]}/ (Ctrl-C stops)")
            try:
                srv.serve_forever()
            except KeyboardInterrupt:
                pass
        elif a.cmd == "request-update":
            cmd = update_command(a.url, a.image.read_bytes())
            payload = command_payload(cmd)
            if a.print or not a.db:
                print(json.dumps({"device": a.device, "kind": CMD_OTA, "payload": payload.hex(), **cmd}))
            else:
                cid = queue_update(a.db, a.device, payload)
                print(f"ota command {cid} queued for device {a.device}: {cmd['version']} from {cmd['url']}")
    except ToolError as e:
        print(f"ihd ota: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        what = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
        print(f"ihd ota: error: {what}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
