"""make mp32: build our own MicroPython Unix port, configured like the ESP32.

    python3 tools/ihd/mp32/build.py [--micropython-dir DIR] [--jobs N] [--clean]

The source is MICROPY_DIR (or --micropython-dir); by default the pinned
tarball in ../shared/micropython/ is unpacked once into build/micropython/.
The variant (tools/ihd/mp32/variant/) makes a 32-bit, single-precision build
with the firmware frozen in; the binary is build/mp32/micropython. A rerun
after a firmware change only refreezes and relinks (a few seconds).
Needs gcc with -m32 support: Debian's gcc-multilib is installed with
apt-get when missing and this runs as root.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent  # tools/ihd/mp32
ROOT = HERE.parents[2]
VARIANT = HERE / "variant"
OUT = ROOT / "build" / "mp32"
SRC_DEFAULT = ROOT / "build" / "micropython"
SHARED = ROOT.parent / "shared" / "micropython"


class BuildError(Exception):
    """Something the user can fix; the message says what."""


def say(msg: str) -> None:
    print(f"mp32: {msg}", flush=True)


def unpack_pinned() -> Path:
    tars = sorted(SHARED.glob("micropython-*.tar.gz"))
    if not tars:
        raise BuildError(
            f"no MicroPython source: {SHARED}/micropython-*.tar.gz is missing. Give MICROPY_DIR=/path/to/micropython"
            " (a checkout of the pinned commit with lib/axtls and lib/micropython-lib; see that folder's README)"
        )
    tar = tars[-1]
    stamp = SRC_DEFAULT / ".unpacked-from"
    if stamp.exists() and stamp.read_text() == tar.name:
        return SRC_DEFAULT
    say(f"unpacking {tar.name} into {SRC_DEFAULT.relative_to(ROOT)}/")
    if SRC_DEFAULT.exists():
        shutil.rmtree(SRC_DEFAULT)
    SRC_DEFAULT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        with tarfile.open(tar) as t:
            t.extractall(tmp, filter="tar")
        top = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(top) != 1 or not (top[0] / "py" / "mpconfig.h").exists():
            raise BuildError(f"{tar} does not unpack to one MicroPython tree")
        top[0].rename(SRC_DEFAULT)
    stamp.write_text(tar.name)
    return SRC_DEFAULT


def check_source(src: Path) -> None:
    need = ["py/mpconfig.h", "ports/unix/Makefile", "mpy-cross/Makefile", "lib/axtls/ssl", "extmod/asyncio"]
    missing = [n for n in need if not (src / n).exists()]
    if missing:
        raise BuildError(
            f"{src} is not a usable MicroPython tree (missing {', '.join(missing)}); "
            "`git submodule update --init lib/axtls lib/micropython-lib` in a git checkout"
        )


def have_m32() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "t.c"
        c.write_text("#include <stdio.h>\nint main(void) { return sizeof(void *) == 4 ? 0 : 1; }\n")
        r = subprocess.run(["gcc", "-m32", str(c), "-o", str(Path(tmp) / "t")], capture_output=True)
        return r.returncode == 0 and subprocess.run([str(Path(tmp) / "t")]).returncode == 0


def ensure_m32() -> None:
    if shutil.which("gcc") is None:
        raise BuildError("gcc not found: install a C compiler (Debian: apt-get install gcc-multilib make)")
    if have_m32():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError("gcc cannot build 32-bit programs (-m32): install Debian's gcc-multilib and run again")
    say("gcc cannot build -m32 programs: installing gcc-multilib with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "gcc-multilib"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    if not have_m32():
        raise BuildError("gcc-multilib is installed but gcc -m32 still fails")


def make(args: list[str], what: str, log: Path) -> None:
    t = time.monotonic()
    with log.open("a") as f:
        f.write(f"$ make {' '.join(args)}\n")
        f.flush()
        r = subprocess.run(["make", *args], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = log.read_text().splitlines()[-30:]
        raise BuildError(f"building {what} failed (full log: {log}):\n" + "\n".join(tail))
    say(f"{what} ok ({time.monotonic() - t:.1f} s)")


def build(src: Path, jobs: int, clean: bool) -> Path:
    check_source(src)
    ensure_m32()
    OUT.mkdir(parents=True, exist_ok=True)
    obj = OUT / "obj"
    origin = OUT / "source.txt"
    if clean or (origin.exists() and origin.read_text() != str(src.resolve())):
        shutil.rmtree(obj, ignore_errors=True)
    origin.write_text(str(src.resolve()))
    log = OUT / "build.log"
    log.write_text("")
    if not (src / "mpy-cross" / "build" / "mpy-cross").exists():
        make(["-C", str(src / "mpy-cross"), f"-j{jobs}"], "mpy-cross", log)
    make(
        [
            "-C",
            str(src / "ports" / "unix"),
            f"-j{jobs}",
            f"VARIANT_DIR={VARIANT}",
            f"BUILD={obj}",
            "PROG=../micropython",  # relative to BUILD: build/mp32/micropython
        ],
        "micropython (unix port, mp32 variant, firmware frozen)",
        log,
    )
    binary = OUT / "micropython"
    binary.touch()  # up to date even when make found nothing to relink (see stale())
    r = subprocess.run(
        [str(binary), "-c", "import sys; print(sys.maxsize, 1.0 + 2.0**-24 == 1.0)"], capture_output=True, text=True
    )
    if r.stdout.split() != [str(2**31 - 1), "True"]:
        raise BuildError(f"{binary} is not a 32-bit single-precision build: {r.stdout}{r.stderr}")
    return binary


def stale() -> list[Path]:
    """Firmware or variant files newer than the binary (its frozen copy is old)."""
    binary = OUT / "micropython"
    if not binary.exists():
        return [binary]
    t = binary.stat().st_mtime
    files = [*(ROOT / "firmware").rglob("*.py"), *VARIANT.rglob("*"), *HERE.rglob("*.py")]
    return [f for f in files if f.is_file() and f.stat().st_mtime > t]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make mp32", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--micropython-dir", default=os.environ.get("MICROPY_DIR") or None, help="MicroPython source tree")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    p.add_argument("--clean", action="store_true", help="rebuild from scratch")
    a = p.parse_args(argv)
    try:
        src = Path(a.micropython_dir) if a.micropython_dir else unpack_pinned()
        if not src.is_dir():
            raise BuildError(f"MICROPY_DIR={src}: no such folder")
        OUT.mkdir(parents=True, exist_ok=True)
        with (OUT / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel test runs)
            binary = build(src, a.jobs, a.clean)
    except BuildError as e:
        print(f"mp32: error: {e}", file=sys.stderr)
        return 2
    say(f"{binary.relative_to(ROOT)} ready (32-bit, single-precision floats, firmware frozen)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
