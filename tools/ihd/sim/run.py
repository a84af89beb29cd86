"""Run the whole in-home display in simulation: meter, co-processor, firmware, network, collector.

    ihd sim run [--protocol ezsp|raven] [--hours H] [--speed X] [--heap 128k]
               [--loss P] [--dup P] [--outage START_H:DURATION_H] [--power-cuts N]
               [--replay FILE | --profile-seed N [--solar W]] [--out DIR] [--board-defaults]

Starts real processes: the co-processor emulator (ihd emulator)
playing the meter, the collector (ihd collector), optionally the network
impairment proxy (tools/ihd/sim/netimpair.py) between device and collector, and the
firmware itself on the MicroPython Unix port (firmware/main.py with
boards/unix). Simulated time runs --speed times faster than real time for all
of them. The firmware is restarted when it asks for a reset (exit status
hal.RESET_EXIT) and after each injected power cut (SIGKILL at a random time,
or a flash power cut armed with IHD_FLASH_CUT at boot). A live status line
shows progress; the display's SPI stream is rendered to DIR/display.png
(ihd panel). At the end DIR/summary.json holds the figures (see
docs/sim.md) and the exit status is 1 if a committed reading is missing at
the collector, a MemoryError happened or the firmware crashed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ihd.sim import cli as simcli  # noqa: E402
from ihd.sim.inject import Injector  # noqa: E402
from ihd.sim.ops import Operator  # noqa: E402
from ihd.sim.proc import (  # noqa: E402
    HOUR,
    START_UTC,
    Firmware,
    Proc,
    build_romfs,
    build_tree,
    launcher_cpu_s,
    parse_size,
    pin_mp32,
)
from ihd.sim.results import Results  # noqa: E402


class Sim(Firmware, Operator, Injector, Results):
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.out = Path(a.out)
        if self.out.exists() and not a.keep_state:
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = self.out / "state"
        self.state.mkdir(exist_ok=True)
        self.runtime = a.runtime
        self.board = a.board
        # mp32 has the firmware frozen in; the wheel runs a precompiled tree
        # (from a ROMFS image outside the heap unless --no-romfs).
        wheel = a.runtime == "wheel"
        self.tree = build_tree(self.out / "firmware") if wheel else None
        if not wheel:
            pin_mp32(self.out / "micropython")
        self.romfs = build_romfs(self.tree, self.out / "firmware.romfs") if wheel and a.romfs else None
        self.rng = random.Random(a.seed)
        self.t0 = 0.0
        self.end_utc = START_UTC + int(a.hours * HOUR)
        self.lock = threading.Lock()
        self.render_lock = threading.Lock()  # previews render in threads
        # from the firmware's output
        self.status: dict = {}
        self.heap_peak = 0
        self.heap_by_day: dict[int, int] = {}
        self.commits: list[tuple[int, int]] = []  # (first, last) seq committed to flash
        self.commit_utc: list[int] = []  # simulated time each commit line arrived
        self.boot_first_seq: dict[int, int] = {}  # boot -> first seq it committed (rows by boot)
        self.kill_utc: list[int] = []  # simulated time of each power cut (SIGKILL)
        self.boot_utc: list[int] = []  # simulated time each firmware process started
        self.emu_log_marks: list[int] = []  # emulator.jsonl size at each emulator start (one per boot)
        self.killed_boots: list[int] = []  # boot numbers (1..) ended by a power cut
        self.faults_seen: Counter = Counter()
        self.mem_errors = 0
        self.caught_mem = False  # a supervisor's MemoryError whose traceback follows
        self.tracebacks: list[list[str]] = []
        self.readings_fw = 0  # sum over boots of readings taken (as of each boot's last status line)
        self._boot_readings = 0
        self.display_done = {"display_full_refreshes": 0, "display_partial_refreshes": 0}
        self._boot_display: dict = {}
        self._boot_cpu: dict = {}  # --cpu-profile: this boot's latest per-task CPU
        self.cpu_tasks: Counter = Counter()  # name -> ms, summed over boots
        self.cpu_resumes: Counter = Counter()
        self.cpu_process_ms = 0
        self.calls: Counter = Counter()  # --cpu-profile calls: function -> calls (orderly stops only)
        self.calls_ms: Counter = Counter()
        self.heap_series: list[tuple[int, int, int]] = []  # (utc, heap after collect, boot)
        self.ota_history: list[dict] = []  # each OTA status the status lines showed, in order
        # run bookkeeping
        self.boots = 0
        self.resets = 0
        self.cuts_done = {"kill": 0, "flash": 0}
        self.crashes = 0
        self.fw_cpu = 0.0
        self.fw: Proc | None = None
        self.emu: Proc | None = None
        self.emu_port = 0
        self.collector: Proc | None = None
        self.impair: Proc | None = None
        self.db = self.out / "collector.sqlite"
        self.device_port = 0
        self.crash_streak = 0
        self.watchdog_resets = 0
        self.events: list[tuple[int, str]] = []
        self.ota_server: Proc | None = None
        self.ota_port = 0
        self.minor = 0
        self.quit = False
        self.aborted = None
        cuts = a.power_cuts
        span = max(1, int(a.hours * HOUR * 0.9))
        self.cut_times = sorted(START_UTC + self.rng.randrange(60, span) for _ in range(cuts))

    # -- time ------------------------------------------------------------------
    def now(self) -> int:
        return START_UTC + int((time.monotonic() - self.t0) * self.a.speed)

    # -- firmware output ---------------------------------------------------------
    def on_fw_line(self, line: str) -> None:
        with self.lock:
            if line.startswith("status "):
                try:
                    s = json.loads(line[7:])
                except ValueError:
                    return
                self.status = s
                self.heap_peak = max(self.heap_peak, s.get("heap_peak", 0), s.get("heap", 0))
                day = (s.get("utc", START_UTC) - START_UTC) // 86400
                self.heap_by_day[day] = max(self.heap_by_day.get(day, 0), s.get("heap", 0))
                for f in s.get("faults", []):
                    self.faults_seen[f] += 0
                self._boot_readings = s.get("readings", 0)
                self._boot_display = s.get("display", {})
                if "cpu" in s:
                    self._boot_cpu = s["cpu"]
                o = s.get("ota")
                if o and (not self.ota_history or self.ota_history[-1] != o):
                    self.ota_history.append(o)
                if s.get("uptime_s", 0) >= 3600:  # past start-up: the steady state
                    self.heap_series.append((s.get("utc", 0), s.get("heap", 0), self.boots))
            elif line.startswith("calls "):  # --cpu-profile calls, at an orderly stop
                _, name, n, ms = line.split()
                self.calls[name] += int(n)
                self.calls_ms[name] += int(ms)
            elif line.startswith("log ota "):
                self.events.append((self.now(), line[4:]))
            elif line.startswith("commit "):
                _, first, last = line.split()
                self.commits.append((int(first), int(last)))
                self.boot_first_seq.setdefault(self.boots, int(first))
                self.commit_utc.append(self.now())
            elif line.startswith("fault ") and " set:" in line:
                self.faults_seen[int(line.split()[1])] += 1
            elif line.startswith("log ") and "(MemoryError)" in line:
                # one the supervisor caught; the traceback it prints next
                # ends in a MemoryError line that is the same error
                self.mem_errors += 1
                self.caught_mem = True
            elif line.startswith("MemoryError"):
                # an uncaught one (end of its traceback)
                if not self.caught_mem:
                    self.mem_errors += 1
                self.caught_mem = False
            if line.startswith("Traceback"):
                self.tracebacks.append([line])
            elif self.tracebacks and len(self.tracebacks[-1]) < 30 and line.startswith(("  ", "PowerCut", "Memory")):
                self.tracebacks[-1].append(line)

    # -- processes -----------------------------------------------------------------
    # -- the run ----------------------------------------------------------------------
    def status_line(self) -> str:
        # What the device shows and sends, from its latest status line,
        # plus what the collector holds.
        s = self.status
        done = (self.now() - START_UTC) / HOUR
        st = s.get("store", {})
        cloud = s.get("cloud") or {}
        f = s.get("fault")
        age = cloud.get("last_ack_age_s")
        ack = "cloud: no ack yet" if age is None else f"cloud ack {age} s ago"
        demand = s.get("demand_w")
        today = s.get("today_wh")
        if cloud.get("realtime"):
            ack += f" | REAL-TIME {cloud.get('realtime_left_s', '?')} s left"
        ota = s.get("ota") or {}
        if ota.get("state") not in (None, "idle"):
            pct = f" {ota.get('percent')}%" if ota.get("state") == "downloading" else ""
            why = f" ({ota['reason']})" if ota.get("reason") else ""
            ack += f" | OTA {ota.get('version') or ''} {ota['state']}{pct}{why}"
        return (
            f"sim {done:6.1f}/{self.a.hours:g} h | v{s.get('version', '?')} "
            f"| meter {(s.get('meter') or {}).get('state', '-')} "
            f"{'-' if demand is None else demand} W, today {'-' if today is None else today} Wh "
            f"| committed {sum(b - a + 1 for a, b in self.commits)} | {ack} "
            f"| store {st.get('fill_pct', '-')}% | {self.heap_text(s.get('heap'))} "
            f"| boots {self.boots} | {f[1] if f else 'OK'}"
        )

    def heap_text(self, used: int | None) -> str:
        # The heap the firmware uses, split into its code's share (module
        # objects: measured at start) and data, against the budget: on mp32
        # the code is frozen and its share is small; on the wheel it is the
        # compiled modules (so "heap 193k" beside a 128 KB data budget).
        if not used:
            return "heap -"
        code, k = self.heap_code, 1024
        return f"heap {used // k}k = code {code // k}k + data {(used - code) // k}k of {self.heapsize // k}k"

    def run(self) -> int:
        self.launcher_cpu = launcher_cpu_s(self.romfs, self.runtime)
        self.heap_code = self.probe_code_heap()
        self.heap_emulation = self.probe_emulation_heap()
        if self.runtime == "mp32":
            # Frozen code, as on the device: --heap is the whole heap (the
            # modules' dicts and function objects included). On a real
            # board the port-module emulation's own objects (C on the
            # device) are measured and added, so --heap stays the device's.
            self.heapsize = parse_size(self.a.heap) + self.heap_emulation
        elif self.a.data_heap:
            # The device runs its code from flash (frozen); here the code
            # sits in the heap, so the cap is code + the data budget.
            self.heapsize = self.heap_code + parse_size(self.a.data_heap)
        else:
            self.heapsize = parse_size(self.a.heap)
        self.configure()
        self.t0 = time.monotonic()
        self.start_network()
        self.killed = False
        self.stopping = False
        self.interrupted = False  # Ctrl-C
        self.drain_from: int | None = None  # last seq committed when the final drain began
        self.drain_utc: int | None = None  # and the simulated time then
        self.pending_flash_cut = False
        cuts = list(self.cut_times)
        last_line = 0.0
        last_preview = time.monotonic()
        tty = sys.stderr.isatty()
        self.start_firmware()
        scripted = []
        if self.a.realtime_at:
            at, _, secs = self.a.realtime_at.partition(":")
            scripted.append((START_UTC + int(float(at) * HOUR), lambda: self.request_realtime(int(secs or 300))))
        if self.a.ota_at is not None:
            scripted.append((START_UTC + int(self.a.ota_at * HOUR), lambda: self.request_ota("1.1.0")))
        for bad, h, v in (("tampered", self.a.ota_tampered_at, "1.2.0"), ("foreign", self.a.ota_foreign_at, "1.3.0")):
            if h is not None:
                scripted.append((START_UTC + int(h * HOUR), lambda bad=bad, v=v: self.request_ota(v, bad=bad)))
        for utc, kind, arg in self.injection_schedule():
            scripted.append((utc, lambda k=kind, g=arg: self.inject(k, g)))
        scripted.sort(key=lambda e: e[0])
        if sys.stdin.isatty():
            threading.Thread(target=self.read_keys, daemon=True).start()
        try:
            while self.now() < self.end_utc and not self.quit:
                while scripted and self.now() >= scripted[0][0]:  # all that are due, together
                    scripted.pop(0)[1]()
                if self.fw.poll() is not None:
                    self.firmware_ended()
                    self.start_firmware()
                    self.note_boot()
                if cuts and self.now() >= cuts[0]:
                    cuts.pop(0)
                    # Every cut kills the process wherever it is; every other
                    # one is a flicker: the next boot also loses power inside
                    # one of its first flash operations (IHD_FLASH_CUT, torn).
                    self.pending_flash_cut = len(cuts) % 2 == 1
                    self.killed = True
                    self.kill_utc.append(self.now())
                    self.killed_boots.append(self.boots)
                    self.cuts_done["kill"] += 1
                    self.fw.stop(signal.SIGKILL)
                if self.a.preview_every and time.monotonic() - last_preview > self.a.preview_every:
                    last_preview = time.monotonic()
                    threading.Thread(target=self.render_display, daemon=True).start()
                if time.monotonic() - last_line > 0.5:
                    last_line = time.monotonic()
                    self.watch_injections()
                    line = self.status_line()
                    print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
                elif self.awaiting_heard():
                    self.watch_injections()
                time.sleep(0.01)
        except KeyboardInterrupt:
            # Ctrl-C: a short drain, then the verdict. What the device holds
            # on flash but has not uploaded yet is unsent, not lost: it goes
            # up at the next run with --keep-state (store and forward).
            print("\nsim: interrupted (Ctrl-C): stopping in order", file=sys.stderr)
            self.interrupted = True
            self.a.drain_s = min(self.a.drain_s, 5)
        except SystemExit as e:  # a component failed: still report what happened
            self.aborted = str(e)
            print(f"\n{e}", file=sys.stderr)
        finally:
            self.finish()
        return self.verdict()

    def drain(self, timeout: float) -> None:
        # The device uploads everything it committed before the drain began.
        # The meter keeps running meanwhile (the emulator serves past the
        # end for that): stopping it first left the run's last screen and
        # summary with fault M01, raised by the simulator's own shutdown
        # order. Readings committed during the drain are its unsent tail.
        target = self.committed_seqs()
        self.drain_from = max(target, default=0)
        self.drain_utc = self.now()
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.fw is not None and self.fw.poll() is None:
            if not target - {r[0] for r in self.collector_rows()}:
                return
            time.sleep(0.5)

    def finish(self) -> None:
        # Whatever happened, no child outlives the simulation.
        try:
            if self.fw is not None and self.fw.poll() is None:
                print("\nsim: waiting for the device to upload what it committed (the meter runs on)", file=sys.stderr)
                self.drain(self.a.drain_s)
                self.stopping = True
                # a profiler (--wrap) writes its data at exit: give it time
                self.fw.stop(signal.SIGINT, timeout=120 if self.a.wrap else 5)
            if self.fw is not None and self.fw.returncode is not None and not self.fw_accounted:
                self.firmware_ended()
        finally:
            for p in (self.fw, self.emu, self.impair, self.collector, self.ota_server):
                if p is not None:
                    p.stop(signal.SIGKILL if p is self.fw else signal.SIGTERM)
        self.render_display()

    # -- results ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = simcli.parser(__doc__)
    a = p.parse_args(argv)
    simcli.check(p, a)
    return Sim(a).run()


if __name__ == "__main__":
    sys.exit(main())
