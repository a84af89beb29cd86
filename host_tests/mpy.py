"""Run code on the real MicroPython Unix port (never in CPython).

`run()` executes a snippet or file with firmware/, the Unix board and
host_tests/mplib on MicroPython's module path, optionally under a heap cap,
and raises MicroPythonError (an AssertionError, so pytest reports it as a
test failure) carrying MicroPython's own traceback when the code fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from ihd.mp32 import runtime as mpruntime  # noqa: E402

FIRMWARE = ROOT / "firmware"
MPLIB = ROOT / "host_tests" / "mplib"
DEFAULT_HEAP = "2m"


class MicroPythonError(AssertionError):
    """MicroPython exited non-zero; the message holds its traceback."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        # This Unix-port build prints uncaught tracebacks on stdout.
        super().__init__(
            f"MicroPython exited with status {returncode}\n"
            f"--- MicroPython output (last 3000 chars) ---\n{stdout[-3000:]}"
            + (f"--- stderr ---\n{stderr[-3000:]}" if stderr else "")
        )


# The whole-device simulation's heap per runtime. mp32 runs the firmware
# frozen, as the ESP32 does, so its cap is the whole heap (the device has
# ~100-110 KB); the wheel keeps its code in the heap, so its cap is the code's
# own heap (measured by the simulator) plus a data budget.
MP32_SIM_HEAP = "96k"
WHEEL_SIM_DATA_HEAP = "128k"


def link_heap() -> str:
    """Heap cap for a test that imports a whole meter link (stack, supervision,
    device clock) and runs it: the device's budget on mp32, where the code is
    frozen; on the wheel the link's ~70 KB of module objects sit in the same
    heap, so 128k left too little once meter/devclock.py came in (CI: MemoryError
    importing raven_link on the wheel)."""
    return "128k" if mpruntime.is_frozen() else "192k"


def sim_command(runtime: str | None = None) -> list[str]:
    """`ihd sim run` on the test's runtime (IHD_MICROPYTHON), with its heap cap."""
    runtime = runtime or mpruntime.default_name()
    heap = ["--heap", MP32_SIM_HEAP] if runtime == "mp32" else ["--data-heap", WHEEL_SIM_DATA_HEAP]
    return [str(ROOT / ".venv" / "bin" / "python"), "-m", "ihd.sim", "run", "--runtime", runtime, *heap]


def native_arch() -> str:
    """mpy-cross -march for the runtime in force: x86 for mp32 (-m32), x64 for the wheel."""
    return "x86" if mpruntime.is_frozen() else "x64"


def suite_runtimes() -> list[str]:
    """The runtimes every MicroPython test runs on: IHD_RUNTIMES (comma
    separated), else every runtime that is built (mp32 and the wheel)."""
    want = os.environ.get("IHD_RUNTIMES", "")
    if want:
        names = [n.strip() for n in want.split(",") if n.strip()]
        bad = [n for n in names if n not in mpruntime.RUNTIMES]
        if bad:
            raise SystemExit(f"IHD_RUNTIMES: unknown runtime(s) {bad}; choose from {list(mpruntime.RUNTIMES)}")
        return names
    return [n for n, p in mpruntime.RUNTIMES.items() if p.exists()]


def __getattr__(name):
    # mpy.MICROPYTHON: the binary of the runtime in force (IHD_MICROPYTHON).
    if name == "MICROPYTHON":
        return mpruntime.binary()
    raise AttributeError(name)


def module_path(board: str = "unix") -> str:
    return mpruntime.module_path([MPLIB, FIRMWARE, ROOT / "boards" / board])


def env_for(state_dir: str | os.PathLike | None = None, extra: dict | None = None, board: str = "unix") -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = module_path(board)
    if state_dir is not None:
        env["IHD_STATE"] = str(state_dir)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def command(script: str | os.PathLike, heap: str | None = DEFAULT_HEAP, args=()) -> list[str]:
    cmd = [str(mpruntime.binary())]
    if heap:
        cmd += ["-X", f"heapsize={heap}"]
    return cmd + [str(script), *map(str, args)]


def run(
    code: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    heap: str | None = DEFAULT_HEAP,
    args=(),
    state_dir=None,
    env: dict | None = None,
    timeout: float = 300,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run `code` (or the file `path`) under MicroPython and return the result.

    With check=True a non-zero exit raises MicroPythonError.
    """
    if (code is None) == (path is None):
        raise ValueError("give exactly one of code and path")
    with tempfile.TemporaryDirectory(prefix="mpy-") as tmp:
        if code is not None:
            path = Path(tmp) / "snippet.py"
            path.write_text(code)
        if state_dir is None:
            state_dir = Path(tmp) / "state"
        proc = subprocess.run(
            command(path, heap, args),
            env=env_for(state_dir, env),
            capture_output=True,
            timeout=timeout,
            input=input,
            cwd=tmp,
        )
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise MicroPythonError(proc.returncode, out, err)
    return result
