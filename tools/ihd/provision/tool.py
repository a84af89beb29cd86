"""Provision an in-home display: write its configuration, validated by the firmware itself.

    ihd provision make --device-id 4097 --generate-key --endpoint ihd.example.net:4700 \\
        --wifi-ssid Home --wifi-key 'secret pass' --protocol ezsp \\
        --install-code 83FED3407A939723A5C639B26916D505C3B5 \\
        --ota-key operator_signing_key.pem -o build/4097.json
    ihd provision check build/4097.json
    ihd provision push build/4097.json --port /dev/ttyACM0 [--dry-run]

`make` builds the JSON described in docs/config.md, runs the firmware's own
validator (firmware/app/config.py) on the MicroPython Unix port, and writes
the file only if the firmware accepts it, so a device never receives a
configuration it would reject at boot. `push` validates again and copies the
file to the device's filesystem as /config.json with mpremote, then resets
it. Exit status: 0 valid, 1 invalid (each problem on stderr), 2 usage or
tool failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / ".venv" / "bin"
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (the MicroPython runtime: IHD_MICROPYTHON, mp32 or the wheel)

# Runs on MicroPython: stdin is the config JSON; prints OK or one error a line.
_VALIDATE = """
import sys
from app import config
try:
    config.parse(sys.stdin.read())
    print("OK")
except config.ConfigError as e:
    for line in e.errors:
        print("ERROR", line)
"""


class ToolError(Exception):
    pass


def validate_text(text: str) -> list[str]:
    """The firmware's verdict on config JSON `text`: [] when valid, else its errors."""
    try:
        micropython = mpruntime.binary()
    except mpruntime.RuntimeError_ as e:
        raise ToolError(str(e)) from None
    with tempfile.TemporaryDirectory(prefix="provision-") as tmp:
        script = Path(tmp) / "validate.py"
        script.write_text(_VALIDATE)
        env = dict(
            os.environ, MICROPYPATH=mpruntime.module_path([ROOT / "firmware", ROOT / "boards" / "unix"]), IHD_STATE=tmp
        )
        proc = subprocess.run(
            [str(micropython), "-X", "heapsize=256k", str(script)],
            input=text.encode(),
            capture_output=True,
            env=env,
            timeout=60,
        )
    out = proc.stdout.decode("utf-8", "replace").splitlines()
    if proc.returncode != 0 or not out:
        raise ToolError("firmware validator failed:\n" + proc.stdout.decode() + proc.stderr.decode())
    if out == ["OK"]:
        return []
    return [line[len("ERROR ") :] for line in out if line.startswith("ERROR ")]


def ota_key_digest(pem: Path) -> str:
    """SHA-256 digest of a Secure Boot V2 signing key, as espsecure computes it."""
    with tempfile.TemporaryDirectory(prefix="provision-") as tmp:
        out = Path(tmp) / "digest.bin"
        proc = subprocess.run(
            [str(BIN / "espsecure"), "digest-sbv2-public-key", "--keyfile", str(pem), "-o", str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ToolError(f"espsecure could not digest {pem}:\n{proc.stdout}{proc.stderr}")
        return out.read_bytes().hex()


def build(args: argparse.Namespace) -> dict:
    if args.generate_key == bool(args.key):
        raise ToolError("give exactly one of --key HEX and --generate-key")
    digests = list(args.ota_key_digest or [])
    for pem in args.ota_key or []:
        digests.append(ota_key_digest(Path(pem)))
    cfg = {
        "format": 1,
        "device_id": args.device_id,
        "key_id": args.key_id,
        "key": secrets.token_hex(32) if args.generate_key else args.key.lower(),
        "endpoints": args.endpoint,
        "wifi_ssid": args.wifi_ssid,
        "wifi_key": args.wifi_key,
        "meter_protocol": args.protocol,
        "ota_keys": [d.lower() for d in digests],
    }
    if args.install_code:
        cfg["install_code"] = args.install_code.replace("-", "").replace(" ", "").upper()
    if args.nat_timeout is not None:
        cfg["nat_timeout_s"] = args.nat_timeout
    if args.utc_offset is not None:
        cfg["utc_offset_min"] = args.utc_offset
    return cfg


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # the config holds the device's uplink key: readable by its owner only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to an existing file
    os.replace(tmp, path)


def report(errors: list[str], what: str) -> int:
    if errors:
        for e in errors:
            print(f"{what}: {e}", file=sys.stderr)
        print(f"{what}: rejected by the firmware's validator ({len(errors)} problem(s))", file=sys.stderr)
        return 1
    return 0


def cmd_make(args: argparse.Namespace) -> int:
    cfg = build(args)
    text = json.dumps(cfg, indent=1) + "\n"
    errors = validate_text(text)
    if report(errors, "config"):
        return 1
    write_atomic(Path(args.out), text)
    print(f"wrote {args.out} (device {cfg['device_id']}, key id {cfg['key_id']})")
    # The collector must know the key; print what to register there.
    print(f"collector registration: device_id={cfg['device_id']} key_id={cfg['key_id']} key={cfg['key']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text()
    except OSError as e:
        raise ToolError(f"cannot read {path}: {e.strerror}")
    errors = validate_text(text)
    if report(errors, str(path)):
        return 1
    print(f"{path}: OK")
    return 0


def push_commands(path: Path, port: str) -> list[list[str]]:
    mpremote = str(BIN / "mpremote")
    return [
        [mpremote, "connect", port, "fs", "cp", str(path), ":config.json"],
        [mpremote, "connect", port, "reset"],
    ]


def cmd_push(args: argparse.Namespace) -> int:
    if cmd_check(args):
        return 1
    if not args.dry_run:
        from ihd.deploy import tool as deploy  # the same serial-port check as `ihd deploy deploy`

        try:
            deploy.check_port(args.port)
        except deploy.ToolError as e:
            raise ToolError(str(e))
    for cmd in push_commands(Path(args.file), args.port):
        print("+ " + shlex.join(cmd))
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            raise ToolError(f"mpremote failed on {args.port}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="build and validate a config file")
    m.add_argument("--device-id", type=int, required=True)
    m.add_argument("--key-id", type=int, default=1)
    m.add_argument("--key", help="per-device uplink key, 64 hex digits")
    m.add_argument("--generate-key", action="store_true", help="generate a random per-device key")
    m.add_argument("--endpoint", action="append", required=True, help="collector host:port (repeat for failover)")
    m.add_argument("--wifi-ssid", required=True)
    m.add_argument("--wifi-key", default="")
    m.add_argument("--protocol", choices=("ezsp", "raven"), default="ezsp", help="co-processor protocol")
    m.add_argument("--install-code", help="ZigBee install code with its CRC, hex (ezsp)")
    m.add_argument("--ota-key", action="append", help="operator's OTA signing key PEM (its digest is stored)")
    m.add_argument("--ota-key-digest", action="append", help="trusted OTA key digest, 64 hex digits")
    m.add_argument(
        "--nat-timeout",
        type=int,
        help="idle timeout of the home router's UDP mappings, s (30..600; default 60): sets the uplink keep-alive",
    )
    m.add_argument(
        "--utc-offset",
        type=int,
        help="local time's offset from UTC in minutes, no DST (-720..840), for a meter without a time zone",
    )
    m.add_argument("-o", "--out", required=True, help="config file to write (Unix board: <state dir>/config.json)")
    m.set_defaults(fn=cmd_make)
    c = sub.add_parser("check", help="validate a config file with the firmware's validator")
    c.add_argument("file")
    c.set_defaults(fn=cmd_check)
    u = sub.add_parser("push", help="validate and copy a config file to a device with mpremote")
    u.add_argument("file")
    u.add_argument("--port", required=True, help="serial port of the device, e.g. /dev/ttyACM0")
    u.add_argument("--dry-run", action="store_true", help="print the mpremote commands without running them")
    u.set_defaults(fn=cmd_push)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except ToolError as e:
        print(f"provision: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
