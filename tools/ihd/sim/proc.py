"""Processes and helpers for ihd sim: child processes with CPU accounting, the precompiled firmware tree.

`Proc` runs one child (emulator, collector, netimpair, firmware), copies its
output lines to a log file and a callback, and reaps it with os.wait4 so its
CPU time is known. `build_tree` compiles the firmware as the device runs it;
`build_romfs` packs that tree into a ROMFS image and `firmware_cmd` runs the
firmware from it, the way a device runs frozen or ROMFS code: the bytecode
stays outside the GC heap. `Firmware` (a mixin for Sim) starts each boot and
accounts for each one that ended; `store_readings` reads the committed
readings back from the final flash.

    python -m ihd.sim.proc romrun IMAGE [micropython options] -- runs
    MicroPython with IMAGE mounted read-only at /rom, first on sys.path.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
from ihd.mp32 import runtime as mpruntime  # noqa: E402

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


def build_romfs(tree: Path, image: Path) -> Path:
    """The compiled tree as a ROMFS image (mpremote romfs build, .mpy files as they are)."""
    r = subprocess.run(
        [str(BIN / "mpremote"), "romfs", "--no-mpy", "-o", str(image), "build", str(tree)],
        capture_output=True,
        text=True,
    )
    if r.returncode or not image.exists():
        raise SystemExit(f"sim: mpremote romfs build failed:\n{r.stdout}{r.stderr}")
    return image


# Run inside MicroPython by `romrun`: mount the image the launcher holds in
# memory outside the GC heap (uctypes.bytearray_at: no copy), then boot as
# the device does. A VfsRom runs .mpy bytecode in place, as a device runs
# frozen modules or a ROMFS partition mapped from flash.
ROM_BOOT = (
    "import os, sys, uctypes, vfs\n"
    "a, n = (int(x) for x in os.getenv('IHD_ROMFS').split(':'))\n"
    "vfs.mount(vfs.VfsRom(uctypes.bytearray_at(a, n)), '/rom')\n"
    "sys.path.insert(0, '/rom')\n"
    "del a, n\n"
)


ESP32PORT = ROOT / "tools" / "ihd" / "mp32" / "esp32port"  # the ESP32 port's modules, emulated (mp32 only)


def sim_path(runtime: str, board: str, tree: Path | None) -> str:
    """MICROPYPATH of the firmware: on mp32 the frozen firmware, the board
    folder and, for a real board, the emulated ESP32 port modules; on the
    wheel the precompiled tree (firmware + boards/unix) before .frozen."""
    if runtime == "mp32":
        dirs = [".frozen", str(ROOT / "boards" / board)]
        if board != "unix":
            dirs.append(str(ESP32PORT))
        return ":".join(dirs)
    return f"{tree}:.frozen"


# The device's start on a real board (mp32 only): the port's frozen _boot
# (emulated: littlefs on the "vfs" partition at "/", formatted on the first
# boot), then main.py.
ESP32_BOOT = "import _esp32emu.boot\nimport main\n"

# `mpremote cp FILE :/config.json` on a real board, before its first boot as
# an IHD: MicroPython boots (the first boot formats the "vfs" littlefs) and
# the file goes into /config.json there, on the emulated flash.
ESP32_PUSH = (
    "import _esp32emu.boot\nfrom _esp32emu import host\n"
    "with open(host(%r), 'rb') as s:\n    b = s.read()\n"
    "with open(%r, 'wb') as d:\n    d.write(b)\nprint('pushed', len(b))\n"
)


def esp32_push(board: str, state: Path, src: Path, dst: str = "/config.json") -> None:
    """Copy a host file into the littlefs of the emulated board in `state`."""
    env = dict(os.environ, MICROPYPATH=sim_path("mp32", board, None), IHD_STATE=str(state))
    for k in ("IHD_FLASH_CUT", "IHD_FLASH_TORN", "IHD_PANEL_REC", "IHD_CLOCK", "IHD_UART"):
        env.pop(k, None)
    cmd = firmware_cmd(None, 256 * 1024, code=ESP32_PUSH % (str(src.resolve()), dst), runtime="mp32")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if r.returncode or "pushed" not in r.stdout:
        raise SystemExit(f"sim: copying {src.name} to {dst} on the emulated board failed:\n{r.stdout}{r.stderr}")


_MP32 = [None]  # the run's own copy of the mp32 binary (pin_mp32)


def pin_mp32(dest: Path) -> None:
    """Run this simulation on a copy of build/mp32/micropython: a rebuild
    (any test session refreezes a changed firmware) must not swap the
    firmware under a soak halfway through."""
    shutil.copy2(mpruntime.binary("mp32"), dest)
    _MP32[0] = dest


def firmware_cmd(
    romfs: Path | None, heapsize: int, code: str | None = None, main: Path | None = None, runtime: str = "wheel"
) -> list[str]:
    """The command that runs the firmware: mp32 (frozen firmware), the
    wheel with the tree on MICROPYPATH, or the wheel with a ROMFS image."""
    if runtime == "mp32":
        mp32 = _MP32[0] or mpruntime.binary("mp32")
        return [str(mp32), "-X", f"heapsize={heapsize}", "-c", code or "import main\n"]
    if romfs is None:
        return [str(BIN / "micropython"), "-X", f"heapsize={heapsize}", *(["-c", code] if code else [str(main)])]
    boot = ROM_BOOT + (code or "import main\n")
    return [PY, "-m", "ihd.sim.proc", "romrun", str(romfs), "-X", f"heapsize={heapsize}", "-c", boot]


def romrun(argv: list[str]) -> int:
    # The image is read into a bytearray that CPython holds for the whole
    # run; MicroPython reaches it by address (IHD_ROMFS=addr:len), so it is
    # never part of MicroPython's own heap (-X heapsize).
    import ctypes

    import micropython_run  # the MicroPython Unix port as a CPython extension (.venv/bin/micropython)

    img = bytearray(Path(argv[0]).read_bytes())
    addr = ctypes.addressof((ctypes.c_char * len(img)).from_buffer(img))
    os.environ["IHD_ROMFS"] = f"{addr}:{len(img)}"
    return micropython_run.run_main(["micropython", *argv[1:]])


# The firmware's store opened on a copy of the final flash (boot recovery may
# write), read by the firmware's own reader: every committed reading it holds.
# Readings carry device seconds (meter/reading.py DEV_EPOCH); printed as UTC.
STORE_DUMP = (
    "import hal\nfrom store import Store\nfrom meter.reading import DEV_EPOCH\n"
    "st = Store(hal.partition('store'))\nfor r in st.readings_from(1):\n"
    "    print('%d %d %d %d %d %d' % (r[0], r[1] + DEV_EPOCH, r[2], r[3], r[4], r[5]))\nprint('end')\n"
)


def store_readings(tree: Path | None, flash: Path, runtime: str = "wheel") -> dict[int, tuple] | None:
    """seq -> (seq, utc, demand_w, delivered_wh, received_wh, flags) of every
    committed reading on the NOR flash file; None if it cannot be read."""
    if not flash.exists():
        return {}
    with tempfile.TemporaryDirectory(prefix="simflash-") as d:
        shutil.copyfile(flash, Path(d) / "flash.bin")
        env = dict(os.environ, MICROPYPATH=sim_path(runtime, "unix", tree), IHD_STATE=d)
        for k in ("IHD_FLASH_CUT", "IHD_FLASH_TORN", "IHD_PANEL_REC", "IHD_CLOCK"):
            env.pop(k, None)
        cmd = firmware_cmd(None, 4 << 20, code=STORE_DUMP, runtime=runtime)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    lines = r.stdout.split("\n")
    if r.returncode or "end" not in lines:
        print(f"sim: reading the store back failed:\n{r.stdout[-500:]}{r.stderr[-1500:]}", file=sys.stderr)
        return None
    out = {}
    for ln in lines:
        w = ln.split()
        if len(w) == 6:
            t = tuple(int(x) for x in w)
            out[t[0]] = t
    return out


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
    path = mpruntime.module_path([ROOT / "boards" / "unix", ROOT / "firmware"])
    e = dict(os.environ, MICROPYPATH=path, **(env or {}))
    code = "import board, json\nprint(json.dumps(board.DEFAULT_CONFIG))"
    r = subprocess.run([str(mpruntime.binary()), "-c", code], capture_output=True, text=True, env=e)
    if r.returncode:
        raise SystemExit(f"sim: cannot read the Unix board's DEFAULT_CONFIG:\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def launcher_cpu_s(romfs: Path | None = None, runtime: str = "wheel") -> float:
    """CPU of starting and stopping an empty MicroPython (the pip build runs
    inside a CPython launcher; with romfs, ours); subtracted per boot from
    the firmware's CPU."""
    samples = []
    for _ in range(3):
        cmd = firmware_cmd(romfs, 64 * 1024, code="pass", runtime=runtime)
        if romfs is not None:
            cmd[-1] = ROM_BOOT  # the mount included: it is part of the launch
        p = subprocess.Popen(cmd)
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
            start_new_session=True,  # Ctrl-C in a terminal reaches ihd sim only
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


class Firmware:
    """A mixin for ihd sim's Sim: starts the firmware for each boot (its
    environment: clock, UART, collector, injected flash cut) and accounts for
    each boot that ended (CPU, display refreshes, why it ended)."""

    def firmware_env(self, flash_cut: int | None) -> dict:
        env = dict(os.environ)
        env["MICROPYPATH"] = sim_path(self.runtime, self.board, self.tree)
        env["IHD_MICROPYTHON"] = self.runtime
        env["IHD_STATE"] = str(self.state)
        env["IHD_CLOCK"] = f"utc={self.now()},speed={int(self.a.speed)}"
        if self.board != "unix" or getattr(self, "rtc_invalid_next", False):
            # A real board's RTC reads 2000-01-01 after a power-on until the
            # firmware sets it (the emulation keeps it over resets); on the
            # Unix board, once after --inject H:rtc-invalid.
            env["IHD_CLOCK"] += ",invalid"
            self.rtc_invalid_next = False
        env["IHD_UART"] = f"tcp:127.0.0.1:{self.emu_port}"
        env["IHD_COLLECTOR"] = f"127.0.0.1:{self.device_port}"
        env.pop("IHD_FLASH_CUT", None)
        env.pop("IHD_PANEL_REC", None)
        env.pop("IHD_PROFILE", None)
        if self.a.cpu_profile:
            env["IHD_PROFILE"] = self.a.cpu_profile
        if self.a.record_display:
            env["IHD_PANEL_REC"] = str(self.state / "panel.rec")
        if flash_cut is not None:
            env["IHD_FLASH_CUT"] = str(flash_cut)
            env["IHD_FLASH_TORN"] = str(self.rng.randrange(0, 64))
        return env

    def probe_code_heap(self) -> int:
        """Heap the firmware's imported code takes on this port (app.preload())."""
        env = self.firmware_env(None)
        code = f"from app import app\nprint(app.preload({self.a.protocol!r}))\n"
        cmd = firmware_cmd(self.romfs, 4 << 20, code=code, runtime=self.runtime)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode or not r.stdout.strip().isdigit():
            raise SystemExit(f"sim: heap probe failed:\n{r.stdout}{r.stderr}")
        return int(r.stdout.strip())

    # The emulation's own objects on a real board: the ESP32 port's machine,
    # network, time and select are C on the device (no heap), here Python
    # (_esp32emu and the shims). Imported alone, after a collection, in a
    # fresh process: heap the device never spends. Not counted, so still
    # charged to --heap: the emulated esp32.Partition with hal/norflash.py and
    # hal/unix_partition.py under it (importing them imports hal.esp32, the
    # device's own code, which must stay charged).
    EMU_PROBE = (
        "import gc\ngc.collect()\na = gc.mem_alloc()\n"
        "import _esp32emu, _esp32emu.time, _esp32emu.select, _esp32emu.machine, _esp32emu.network\n"
        "import machine, network, time, select\n"
        "gc.collect()\nprint(gc.mem_alloc() - a)\n"
    )

    def probe_emulation_heap(self) -> int:
        """Heap of the ESP32 port emulation (0 on the Unix board)."""
        if self.board == "unix":
            return 0
        env = self.firmware_env(None)
        env["IHD_STATE"] = tempfile.mkdtemp(prefix="simemu-")
        r = subprocess.run(
            firmware_cmd(None, 1 << 20, code=self.EMU_PROBE, runtime=self.runtime),
            capture_output=True,
            text=True,
            env=env,
        )
        shutil.rmtree(env["IHD_STATE"], ignore_errors=True)
        if r.returncode or not r.stdout.strip().isdigit():
            raise SystemExit(f"sim: emulation heap probe failed:\n{r.stdout}{r.stderr}")
        return int(r.stdout.strip())

    def start_firmware(self) -> None:
        flash_cut = None
        if self.pending_flash_cut:
            flash_cut = self.rng.randrange(1, 200)
            self.pending_flash_cut = False
        self.start_emulator()
        main = None if self.tree is None else self.tree / "main.py"
        code = ESP32_BOOT if self.board != "unix" else None
        cmd = firmware_cmd(self.romfs, self.heapsize, code=code, main=main, runtime=self.runtime)
        if self.a.wrap:
            # A profiler around the firmware (e.g. valgrind --tool=callgrind);
            # %b in it becomes the boot number (one output file per boot).
            cmd = [w.replace("%b", str(self.boots + 1)) for w in shlex.split(self.a.wrap)] + cmd
        self.boots += 1
        self.boot_utc.append(self.now())
        self._boot_readings = 0
        # this boot's panel recording starts empty (the firmware opens it
        # "wb" too, but only once it draws), and so do the previews
        (self.state / "panel.rec").unlink(missing_ok=True)
        if self.a.preview_every and self.boots > 1:
            self.render_display()
        self.fw = Proc("firmware", cmd, self.out / "firmware.log", self.on_fw_line, self.firmware_env(flash_cut))
        self.fw_accounted = False
        self.fw_armed_cut = flash_cut is not None

    def firmware_ended(self) -> None:
        # Account for the run that just ended; decide whether that was fine.
        fw = self.fw
        self.fw_accounted = True
        self.fw_cpu += fw.cpu_s()
        self.readings_fw += self._boot_readings
        for k in self.display_done:
            self.display_done[k] += self._boot_display.get(k, 0)
        self._boot_display = {}
        for name, (resumes, ms) in self._boot_cpu.get("tasks", {}).items():
            self.cpu_tasks[name] += ms
            self.cpu_resumes[name] += resumes
        self.cpu_process_ms += self._boot_cpu.get("process_ms") or 0
        self._boot_cpu = {}
        rc = fw.returncode
        self.crash_streak = 0 if rc in (RESET_EXIT, -signal.SIGKILL) else self.crash_streak
        if rc == RESET_EXIT:
            self.resets += 1
        elif self.stopping and rc in (0, -signal.SIGINT, -signal.SIGKILL):
            pass  # our stop: SIGINT, then SIGKILL when a loaded machine kept it past the grace time
        elif rc == -signal.SIGKILL and self.killed:
            pass  # our power cut
        elif rc == -signal.SIGKILL and any("watchdog expired" in ln for ln in fw.tail):
            self.watchdog_resets += 1  # the loop stopped turning: a failure
            print("\nsim: the firmware's watchdog fired", file=sys.stderr)
        elif self.fw_armed_cut and any("PowerCut" in ln for ln in fw.tail):
            self.cuts_done["flash"] += 1
        else:
            self.crashes += 1
            self.crash_streak += 1
            print(f"\nsim: firmware exited with status {rc}:\n" + "\n".join(fw.tail[-15:]), file=sys.stderr)
            if self.crash_streak >= 5:
                raise SystemExit("sim: the firmware crashed at 5 boots in a row; stopping")
        self.killed = False


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "romrun":
        sys.exit("usage: sim/proc.py romrun IMAGE [micropython options and arguments]")
    sys.exit(romrun(sys.argv[2:]))
