"""Processes and helpers for tools/sim.py: child processes with CPU accounting, the precompiled firmware tree.

`Proc` runs one child (emulator, collector, netimpair, firmware), copies its
output lines to a log file and a callback, and reaps it with os.wait4 so its
CPU time is known. `build_tree` compiles the firmware as the device runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PY = str(BIN / "python")
RESET_EXIT = 75  # hal.RESET_EXIT
START_UTC = 1767225600  # 2026-01-01T00:00:00Z: reproducible runs
HOUR = 3600
STORE_PART = (0x3F0000, 0x40000)  # boards/unix/board.py "store"


def build_tree(dest: Path) -> Path:
    """The firmware as the device runs it: precompiled, not compiled at import.

    On the board the modules are frozen (bytecode in flash); compiling .py at
    import would cost the Unix run tens of KB of heap the device never
    spends. mpy-cross -march=x64 also compiles @micropython.native/viper code.
    """
    if dest.exists():
        shutil.rmtree(dest)
    srcs = [(p, p.relative_to(ROOT / "firmware")) for p in (ROOT / "firmware").rglob("*.py")]
    srcs += [(p, p.relative_to(ROOT / "boards" / "unix")) for p in (ROOT / "boards" / "unix").glob("*.py")]
    for src, rel in srcs:
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() == "main.py":
            shutil.copyfile(src, out)
            continue
        r = subprocess.run(
            [str(BIN / "mpy-cross"), "-march=x64", "-s", rel.as_posix(), "-o", str(out.with_suffix(".mpy")), str(src)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise SystemExit(f"sim: mpy-cross failed on {rel}:\n{r.stdout}{r.stderr}")
    return dest


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1:], 1)
    return int(s.rstrip("km")) * mult


def board_defaults(env: dict | None = None) -> dict:
    """boards/unix/board.py DEFAULT_CONFIG, as the firmware sees it (read on MicroPython)."""
    e = dict(os.environ, MICROPYPATH=f"{ROOT / 'boards' / 'unix'}:{ROOT / 'firmware'}:.frozen", **(env or {}))
    code = "import board, json\nprint(json.dumps(board.DEFAULT_CONFIG))"
    r = subprocess.run([str(BIN / "micropython"), "-c", code], capture_output=True, text=True, env=e)
    if r.returncode:
        raise SystemExit(f"sim: cannot read the Unix board's DEFAULT_CONFIG:\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def launcher_cpu_s() -> float:
    """CPU of starting and stopping an empty MicroPython (the pip build runs
    inside a CPython launcher); subtracted per boot from the firmware's CPU."""
    samples = []
    for _ in range(3):
        p = subprocess.Popen([str(BIN / "micropython"), "-c", "pass"])
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
        samples.append(ru.ru_utime + ru.ru_stime)
    return sorted(samples)[1]


class Proc:
    """A child process whose output lines go to a log file and a callback."""

    def __init__(self, name: str, cmd: list[str], log: Path, on_line=None, env=None, cwd=None):
        self.name = name
        self.cmd = cmd
        self.log = open(log, "a")
        self.log.write(f"### {time.strftime('%H:%M:%S')} start: {' '.join(cmd)}\n")
        self.log.flush()
        self.on_line = on_line
        self.p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches sim.py only
        )
        self.returncode: int | None = None
        self.rusage = None
        self.tail: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.write(line + "\n")
            self.tail = (self.tail + [line])[-40:]
            if self.on_line:
                try:
                    self.on_line(line)
                except Exception as e:  # a bad line must not stop the reader (the child would block)
                    self.log.write(f"### sim could not parse that line: {e!r}\n")
        self.log.flush()

    def poll(self) -> int | None:
        # os.wait4 rather than Popen.wait: the child's CPU time comes with it.
        if self.returncode is None:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                self._reaped(status, ru)
        return self.returncode

    def _reaped(self, status, ru) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.returncode
        self.rusage = ru
        self._t.join(timeout=5)
        self.log.write(f"### exit {self.returncode}\n")
        self.log.flush()

    def wait(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=5.0) -> int | None:
        if self.poll() is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                os.kill(self.p.pid, signal.SIGKILL)
                self.wait(timeout)
        return self.returncode

    def cpu_s(self) -> float:
        return 0.0 if self.rusage is None else self.rusage.ru_utime + self.rusage.ru_stime
