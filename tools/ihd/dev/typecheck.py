"""Type-check firmware/ against micropython-esp32-stubs with mypy.

The stub package installs its .pyi files at the top of site-packages, where
mypy will not look for modules that are not packages, so they are copied to
.venv/mpstubs and put on MYPYPATH; micropython-stdlib-stubs (also in
site-packages) serves as mypy's typeshed. Settings: [tool.mypy] in
pyproject.toml. Both ports' HAL modules are checked; board modules too.

    python -m ihd.dev.typecheck
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv"


def stub_dir() -> Path:
    out = VENV / "mpstubs"
    if out.exists():
        shutil.rmtree(out)
    # The port's modules, plus _mpy_shed (shared stub helpers some import).
    for name, keep in (("micropython-esp32-stubs", ""), ("micropython-stdlib-stubs", "_mpy_shed/")):
        dist = md.distribution(name)
        site = Path(dist.locate_file(""))
        for f in dist.files or ():
            if str(f).endswith(".pyi") and str(f).startswith(keep):
                dst = out / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(site / f, dst)
    return out


def main() -> int:
    stubs = stub_dir()
    site = Path(md.distribution("micropython-stdlib-stubs").locate_file(""))
    fw = ROOT / "firmware"
    targets = sorted(str(p.relative_to(fw)) for p in fw.rglob("*.py"))
    env = dict(os.environ)
    env["MYPYPATH"] = os.pathsep.join([str(stubs), str(ROOT / "boards" / "unix")])
    cmd = [
        str(VENV / "bin" / "mypy"),
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--custom-typeshed-dir",
        str(site),
        "--no-site-packages",
        "--explicit-package-bases",
        "--cache-dir",
        str(ROOT / ".mypy_cache"),
        *targets,
    ]
    print(f"mypy: {len(targets)} firmware modules against micropython-esp32-stubs")
    return subprocess.run(cmd, cwd=fw, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
