"""Operator side of ihd sim: provisioning, collector commands, the network and the emulator.

A mixin for Sim (ihd sim): it starts the collector (and netimpair when
the network is impaired), one co-processor emulator per firmware boot, writes
the device's configuration (ihd provision) and registers its key, and
turns operator actions, scripted or typed, into collector commands.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from ihd.sim.cli import supplier_args
from ihd.sim.inject import COLLECTOR_KINDS
from ihd.sim.proc import HOUR, PY, ROOT, START_UTC, Proc, board_defaults, esp32_push, free_port


class Operator:
    def tool(self, module: str, *args: str) -> str:
        # a host tool (`python -m MODULE ...`), this checkout's (ihd/__init__.py)
        r = subprocess.run([PY, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)
        if r.returncode:
            raise SystemExit(f"sim: {module} {args[0] if args else ''} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def configure(self) -> None:
        # The device's config: the board's embedded defaults (make run), or
        # one written by ihd provision with a fresh key (scripted runs).
        a = self.a
        self.device_port = free_port(socket.SOCK_DGRAM)
        # (Only the Unix board has embedded defaults; a real board is provisioned.)
        defaults = None
        if a.board_defaults and self.board == "unix":
            defaults = board_defaults({"IHD_COLLECTOR": f"127.0.0.1:{self.device_port}"})
        if defaults is not None and a.protocol != defaults["meter_protocol"]:
            # `make run SIM_ARGS="--protocol raven"`: the embedded defaults
            # are an EZSP device, so this run provisions one instead.
            print(f"sim: the board's defaults are {defaults['meter_protocol']}; provisioning a {a.protocol} device")
            defaults = None
        if defaults is not None:
            # The defaults name the collector by IHD_COLLECTOR (the port is
            # ours to choose, so several simulations can run at once).
            cfg = defaults
            (self.state / "config.json").unlink(missing_ok=True)
        else:
            out = self.tool(
                "ihd.provision.tool",
                "make",
                "--device-id",
                "4097",
                "--generate-key",
                "--endpoint",
                f"127.0.0.1:{self.device_port}",
                "--wifi-ssid",
                "sim-wifi",
                "--protocol",
                a.protocol,
                "--install-code",
                board_defaults()["install_code"],
                "--ota-key",
                str(ROOT / "boards" / "unix" / "sim_ota_signing_key.pem"),
                "-o",
                str(self.state / "config.json"),
            )
            cfg = json.loads((self.state / "config.json").read_text())
            assert f"key={cfg['key']}" in out
            if self.board != "unix":
                # A real board reads /config.json from its littlefs ("vfs"
                # partition), where `mpremote cp` puts it.
                esp32_push(self.board, self.state, self.state / "config.json")
        self.device_id = cfg["device_id"]
        self.tool(
            "ihd.collector.ingest",
            "--db",
            str(self.db),
            "add-device",
            str(cfg["device_id"]),
            "--key",
            cfg["key"],
            "--key-id",
            str(cfg["key_id"]),
        )

    # -- operator actions: real-time mode, OTA (scripted or typed) ---------------------
    def request_realtime(self, seconds: int) -> None:
        out = self.tool(
            "ihd.collector.ingest",
            "--db",
            str(self.db),
            "realtime",
            str(self.device_id),
            "--seconds",
            str(seconds),
        )
        self.events.append((self.now(), f"realtime {seconds}s requested"))
        print(f"\nsim: {out.strip()}", file=sys.stderr)

    def request_ota(self, version: str = "1.1.0", bad: str = "") -> None:
        # A test image signed with the simulation's OTA key (the one the Unix
        # board's defaults trust), served over HTTP, announced by the
        # collector: the device downloads, verifies, reboots into it and
        # confirms it once healthy. Bad images, each with a command made for
        # the file as served (size and SHA-256 match), so only the device's
        # verification can refuse them: bad="tampered", one byte flipped
        # after signing; bad="foreign", well formed and signed, by a key the
        # device does not trust.
        ota = "ihd.ota.tool"
        d = self.out / "ota"
        d.mkdir(exist_ok=True)
        name = f"ihd-{version}{'-' + bad if bad else ''}"
        raw, img = d / f"{name}.unsigned.bin", d / f"{name}.bin"
        self.tool(ota, "make-image", "-o", str(raw), "--version", version, "--size", str(256 * 1024))
        key = ROOT / "boards" / "unix" / "sim_ota_signing_key.pem"
        if bad == "foreign":
            key = d / "foreign_key.pem"
            if not key.exists():
                self.tool(ota, "keygen", str(key))
        self.tool(ota, "sign", "-k", str(key), "-o", str(img), str(raw))
        if bad == "tampered":
            b = bytearray(img.read_bytes())
            b[len(b) // 3] ^= 0x01  # inside the first segment's data, far from the header and signature
            img.write_bytes(b)
        if self.ota_server is None:
            self.ota_port = free_port()
            cmd = [PY, "-m", ota, "serve", str(d), "--port", str(self.ota_port)]
            self.ota_server = Proc("ota-server", cmd, self.out / "ota-server.log")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{self.ota_port}/{img.name}"
        out = self.tool(
            ota, "request-update", "--device", str(self.device_id), "--url", url, "--db", str(self.db), str(img)
        )
        self.events.append((self.now(), f"ota {version}{' ' + bad if bad else ''} requested"))
        print(f"\nsim: OTA {name} requested: {out.strip()}", file=sys.stderr)

    def read_keys(self) -> None:
        # Interactive: one command per line on the terminal.
        print("sim: type  r [SECONDS]  real-time mode,  u  OTA update,  q  quit", file=sys.stderr)
        for line in sys.stdin:
            w = line.split()
            try:
                if not w:
                    continue
                if w[0] == "r":
                    self.request_realtime(int(w[1]) if len(w) > 1 else 300)
                elif w[0] == "u":
                    self.minor += 1
                    self.request_ota(f"1.{self.minor}.0")
                elif w[0] == "q":
                    self.quit = True
                    return
                else:
                    print("sim: r [SECONDS] | u | q", file=sys.stderr)
            except SystemExit as e:
                print(e, file=sys.stderr)

    def start_network(self) -> None:
        a = self.a
        impaired = a.loss or a.dup or a.outage
        self.collector_port = free_port(socket.SOCK_DGRAM) if impaired else self.device_port
        self.restart_collector(wait=False)
        if impaired:
            cmd = [PY, "-m", "ihd.sim.netimpair", "--listen", f"127.0.0.1:{self.device_port}"]
            cmd += ["--upstream", f"127.0.0.1:{self.collector_port}", "--loss", str(a.loss), "--dup", str(a.dup)]
            cmd += ["--speed", str(a.speed), "--seed", str(a.seed), "--report", "5"]
            if a.outage:
                start_h, _, dur_h = a.outage.partition(":")
                cmd += ["--outage", f"{float(start_h) * HOUR:.0f}:{float(dur_h) * HOUR:.0f}"]
            self.impair = Proc("netimpair", cmd, self.out / "netimpair.log")
        time.sleep(0.5)
        for p in (self.collector, self.impair):
            if p is not None and p.poll() is not None:
                raise SystemExit(f"sim: {p.name} did not start:\n" + "\n".join(p.tail))

    def restart_collector(self, wait: bool = True) -> None:
        # (Re)start the collector on its port and database (--inject
        # collector-restart / collector-kill start it again after a stop).
        cmd = [PY, "-m", "ihd.collector.ingest", "--db", str(self.db), "serve"]
        cmd += ["--listen", f"127.0.0.1:{self.collector_port}", "--stats-every", "0", "--speed", str(self.a.speed)]
        self.collector = Proc("collector", cmd, self.out / "collector.log", on_line=self._collector_line)
        if wait:
            time.sleep(0.5)
            if self.collector.poll() is not None:
                raise SystemExit("sim: the collector did not start again:\n" + "\n".join(self.collector.tail))

    def _collector_line(self, line: str) -> None:
        # (The collector's reader thread.) Listening again after an injected
        # collector fault: from now on the device can be heard (inject.py).
        if line.startswith("collector: listening"):
            for rec in getattr(self, "injections", ()):
                if rec["boot_real"] is None and rec["kind"] in COLLECTOR_KINDS:
                    rec["boot_real"] = time.time()

    def start_emulator(self) -> None:
        # One emulator per firmware boot: it serves one connection. The
        # household is the same (same seed), so the meter carries on.
        self.emu_port = free_port()
        a = self.a
        cmd = [PY, "-m", "ihd.emulators.coproc", "serve", "--protocol", a.protocol]
        cmd += ["--port", str(self.emu_port), "--speed", str(a.speed), "--seed", str(a.seed)]
        # it serves on through the final drain (sim.drain), so that the
        # meter never falls silent because the simulation is ending
        tail = int(a.drain_s * a.speed) + 600
        cmd += ["--start", str(self.now()), "--duration", str(max(1, self.end_utc - self.now()) + tail)]
        log = self.out / "emulator.jsonl"
        self.emu_log_marks.append(log.stat().st_size if log.exists() else 0)  # where this boot's lines start
        cmd += ["--log", str(log)]
        # the meter's registers (summation) carry on across the per-boot restarts
        cmd += ["--meter-state", str(self.out / "meter_state.json")]
        if a.replay:
            cmd += ["--replay", a.replay]
        if a.record:
            cmd += ["--record", a.record]
        if a.solar:
            cmd += ["--solar", str(a.solar)]
        if getattr(a, "gas", False):
            cmd += ["--gas"]
        cmd += supplier_args(a, self.now() - START_UTC)
        if a.meter_days:
            cmd += ["--meter-days", str(a.meter_days)]
        if self.emu is not None:
            self.emu.stop()
        self.emu = Proc("emulator", cmd, self.out / "emulator.log")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(ln.startswith("listening on") for ln in self.emu.tail):
                return
            if self.emu.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit("sim: the co-processor emulator did not start:\n" + "\n".join(self.emu.tail))
