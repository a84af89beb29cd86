"""Run a host tool under the project's .venv, whatever Python started it.

`python3 tools/ota.py ...` with the system Python lacks the pinned tools
(espsecure, esptool, Pillow, mpremote); the README's commands must work as
written all the same. A tool imports this module first (`import venvexec`
right after `from __future__`, then `# isort: split`): when the running
script is one of tools/ and another Python runs it, it re-executes itself
with .venv/bin/python (same arguments); imported as a library, or already
in the venv, nothing happens. Without a .venv it says how to make one
instead of failing later on an import.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def ensure(name: str) -> None:
    if name != "__main__":
        return
    py = VENV / "bin" / "python"
    try:
        if Path(sys.prefix).resolve() == VENV.resolve():
            return
    except OSError:
        pass
    if py.exists():
        os.execv(str(py), [str(py), *sys.argv])
    tool = Path(sys.argv[0]).name
    sys.exit(
        f"{tool}: the project's Python tools are not installed yet: run `make venv` in {ROOT} once"
        " (it installs the pinned packages into .venv), then run this command again"
    )


_main = sys.modules.get("__main__")
_script = getattr(_main, "__file__", None)
if _script and Path(_script).resolve().parent == Path(__file__).resolve().parent:
    ensure("__main__")
