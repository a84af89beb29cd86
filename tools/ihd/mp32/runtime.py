"""Which MicroPython runs the firmware on the host: the two runtimes.

* ``mp32``: our own build of MicroPython's Unix port from the pinned source
  (``make mp32``, tools/ihd/mp32/): 32-bit, single-precision floats, the firmware
  frozen into the binary, as on the ESP32. The default once it is built.
* ``wheel``: the pinned pip package's Unix port (.venv/bin/micropython):
  64-bit, double precision, code compiled into the heap.

``IHD_MICROPYTHON`` picks one: ``mp32``, ``wheel`` or a path to a binary.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUNTIMES = {
    "mp32": ROOT / "build" / "mp32" / "micropython",
    "wheel": ROOT / ".venv" / "bin" / "micropython",
}


class RuntimeError_(Exception):
    """A runtime was asked for that is not there (message says what to do)."""


def default_name() -> str:
    want = os.environ.get("IHD_MICROPYTHON", "")
    if want:
        return want if want in RUNTIMES else "path"
    return "mp32" if RUNTIMES["mp32"].exists() else "wheel"


def binary(name: str | None = None) -> Path:
    """The MicroPython binary of runtime `name` (default: IHD_MICROPYTHON, else
    mp32 when built, else the wheel)."""
    if name is None:
        want = os.environ.get("IHD_MICROPYTHON", "")
        name = want or default_name()
    if name in RUNTIMES:
        path = RUNTIMES[name]
        if not path.exists():
            hint = "run `make mp32`" if name == "mp32" else "run `make venv`"
            raise RuntimeError_(f"MicroPython runtime {name!r} not found at {path}: {hint}")
        return path
    path = Path(name)
    if not path.exists():
        raise RuntimeError_(f"IHD_MICROPYTHON={name!r}: no such runtime (mp32, wheel) or file")
    return path


def is_frozen(name_or_path: str | os.PathLike | None = None) -> bool:
    """True when the runtime has the firmware frozen in (mp32): then its
    `.frozen` entry goes first on the module path, so the firmware runs from
    the binary, as on the device, and not compiled into the heap."""
    p = binary(None if name_or_path is None else str(name_or_path))
    return p.resolve() == RUNTIMES["mp32"].resolve()


def module_path(dirs, runtime: str | os.PathLike | None = None) -> str:
    """MICROPYPATH for `dirs` (str or Path), frozen modules first on mp32."""
    parts = [str(d) for d in dirs]
    if is_frozen(runtime):
        return ":".join([".frozen", *parts])
    return ":".join([*parts, ".frozen"])
