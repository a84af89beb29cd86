"""Fault injection for the simulator (`tools/sim.py run --inject H:KIND[:ARG]`).

The faults a fleet meets between two boots or at the far end, scheduled at
simulated hour H (docs/sim.md "Fault injection"):

  wipe-flash          power off, the whole NOR flash erased (a new board, a
                      factory reset), power on; the configuration survives
                      (Unix board: a file beside the flash)
  wipe-store          power off, the store partition erased
  delete:NAME         power off, the state file NAME deleted (Unix board:
                      flash.bin, config.json, uplink_seq, ota.json, otakeys.bin)
  corrupt:NAME        power off, 16 random bytes of NAME overwritten
  truncate:NAME       power off, NAME cut to half its length
  rtc-invalid         power off; the next boot's clock is invalid at power-on
                      (as an ESP32's RTC after a power cut) until the meter sets it
  reprovision         power off, a new configuration with a new uplink key
                      (provision.py make), registered with the collector
  collector-restart   the collector stopped (SIGTERM) and started again
  collector-kill      the collector killed (SIGKILL) and started again

Every state fault cuts the power (SIGKILL) first; the main loop boots the
firmware again. Before a fault that destroys readings, what the store holds
is read back (the firmware's own reader on a copy of the flash), so that
every reading ever committed can be compared, by value, with the collector
at the end: `by_value` in the summary. `injected` says, per fault, how long
the device was mute: simulated seconds from the fault to the first reading
the collector stored after it.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time

from simproc import HOUR, ROOT, START_UTC, STORE_PART, esp32_push, store_readings

STATE_KINDS = ("wipe-flash", "wipe-store", "delete", "corrupt", "truncate", "rtc-invalid", "reprovision")
COLLECTOR_KINDS = ("collector-restart", "collector-kill")
FILE_KINDS = ("delete", "corrupt", "truncate")


def parse(spec: str) -> tuple[float, str, str]:
    """'H:KIND[:ARG]' -> (hours, kind, arg); ValueError with the fix in it."""
    h, _, rest = spec.partition(":")
    kind, _, arg = rest.partition(":")
    try:
        hours = float(h)
    except ValueError:
        raise ValueError(f"--inject {spec!r}: {h!r} is not an hour (e.g. --inject 2.5:wipe-store)")
    if kind not in STATE_KINDS + COLLECTOR_KINDS:
        kinds = ", ".join(STATE_KINDS + COLLECTOR_KINDS)
        raise ValueError(f"--inject {spec!r}: unknown fault {kind!r}; one of {kinds}")
    if kind in FILE_KINDS and (not arg or "/" in arg or arg.startswith(".")):
        raise ValueError(f"--inject {spec!r}: name the state file, e.g. {h}:{kind}:uplink_seq")
    if kind not in FILE_KINDS and arg:
        raise ValueError(f"--inject {spec!r}: {kind} takes no argument")
    return hours, kind, arg


class Injector:
    """Mixin for the simulator (tools/sim.py Sim)."""

    def injection_schedule(self) -> list[tuple[int, str, str]]:
        out = []
        for spec in self.a.inject or ():
            hours, kind, arg = parse(spec)
            if kind in FILE_KINDS and self.board != "unix":
                raise SystemExit(f"sim: --inject {spec}: state files are reachable on the unix board only")
            out.append((START_UTC + int(hours * HOUR), kind, arg))
        self.injections: list[dict] = []
        self.eras: list[dict[int, tuple]] = []  # store contents read back before each destructive fault
        self.rtc_invalid_next = False
        self.inject_rng = random.Random(self.a.seed * 7919 + 1)
        return sorted(out)

    def inject(self, kind: str, arg: str) -> None:
        rec = {"at_h": round((self.now() - START_UTC) / HOUR, 3), "kind": kind + (f":{arg}" if arg else "")}
        rec["at_real"] = time.time()
        self.injections.append(rec)
        self.events.append((self.now(), f"inject {rec['kind']}"))
        print(f"\nsim: injecting {rec['kind']}", flush=True)
        if kind in COLLECTOR_KINDS:
            self.collector.stop(signal.SIGKILL if kind == "collector-kill" else signal.SIGTERM)
            self.restart_collector()
            return
        # a power cut first: the fault happens to a device that is off
        self.killed = True
        self.kill_utc.append(self.now())
        self.killed_boots.append(self.boots)
        if self.fw is not None and self.fw.poll() is None:
            self.fw.stop(signal.SIGKILL)
        flash = self.state / "flash.bin"
        if kind in ("wipe-flash", "wipe-store") or (kind in FILE_KINDS and arg == "flash.bin"):
            fl = store_readings(self.tree, flash, self.runtime)
            self.eras.append(fl or {})
        if kind == "wipe-flash":
            for p in (flash, self.state / "flash.bin.wear"):
                p.unlink(missing_ok=True)
            if self.board != "unix":  # the config lived in the littlefs: push it again
                esp32_push(self.board, self.state, self.state / "config.json")
        elif kind == "wipe-store":
            off, size = STORE_PART
            with open(flash, "r+b") as f:
                f.seek(off)
                f.write(b"\xff" * size)
        elif kind == "rtc-invalid":
            self.rtc_invalid_next = True
        elif kind == "reprovision":
            self.reprovision()
        else:
            p = self.state / arg
            if kind == "delete":
                p.unlink(missing_ok=True)
            elif p.exists():
                data = bytearray(p.read_bytes())
                if kind == "truncate":
                    data = data[: len(data) // 2]
                else:
                    for _ in range(16):
                        if data:
                            data[self.inject_rng.randrange(len(data))] = self.inject_rng.randrange(256)
                p.write_bytes(bytes(data))

    def reprovision(self) -> None:
        # A support visit: a new uplink key for the same device id.
        cfg_path = self.state / "config.json"
        old = json.loads(cfg_path.read_text()) if cfg_path.exists() else None
        if old is None:
            raise SystemExit("sim: --inject reprovision needs a provisioned run (not --board-defaults)")
        args = ["make", "--device-id", str(old["device_id"]), "--generate-key", "--key-id", str(old["key_id"] + 1)]
        for e in old["endpoints"]:
            args += ["--endpoint", e]
        args += ["--wifi-ssid", old["wifi_ssid"], "--protocol", old["meter_protocol"]]
        if old.get("install_code"):
            args += ["--install-code", old["install_code"]]
        args += ["--ota-key", str(ROOT / "boards" / "unix" / "sim_ota_signing_key.pem"), "-o", str(cfg_path)]
        self.tool(str(ROOT / "tools" / "provision.py"), *args)
        cfg = json.loads(cfg_path.read_text())
        if self.board != "unix":
            esp32_push(self.board, self.state, cfg_path)
        self.tool(
            str(ROOT / "tools" / "collector.py"), "--db", str(self.db), "add-device", str(cfg["device_id"]),
            "--key", cfg["key"], "--key-id", str(cfg["key_id"]),
        )  # fmt: skip

    # -- results -------------------------------------------------------------------
    def injection_results(self) -> list[dict]:
        """Per fault: simulated seconds until the collector stored a reading
        received after it (None: never again in this run)."""
        out = []
        for rec in self.injections:
            q = "SELECT MIN(received_at) FROM readings WHERE device_id = ? AND received_at > " + repr(rec["at_real"])
            try:
                first = self._query(q)[0][0] if self.db.exists() else None
            except sqlite3.OperationalError:
                first = None
            mute = None if first is None else round((first - rec["at_real"]) * self.a.speed)
            out.append({"at_h": rec["at_h"], "kind": rec["kind"], "mute_s": mute})
        return out

    def by_value(self) -> dict:
        """Every reading committed in the run (each era's store read back
        before it was destroyed, and the final flash), looked up by value at
        the collector: (utc_s, demand, delivered, received, flags) under the
        same seq. `lost`: none there (the collector holds another value under
        its number, or nothing); `unsent`: still on the final flash."""
        final = store_readings(self.tree, self.state / "flash.bin", self.runtime) or {}
        q = "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings WHERE device_id = ?"
        rows = {tuple(r) for r in self._query(q)} if self.db.exists() else set()
        seqs = {r[0] for r in rows}
        seen: set[tuple] = set()
        lost, unsent, other_value = [], 0, 0
        for era in [*self.eras, final]:
            for t in era.values():
                if t in seen:
                    continue
                seen.add(t)
                if t in rows:
                    continue
                if era is final and self.drain_from is not None and t[0] > self.drain_from:
                    unsent += 1  # committed during the final drain
                    continue
                lost.append(t)
                other_value += t[0] in seqs
        return {
            "committed": len(seen),
            "at_collector": len(seen) - len(lost) - unsent,
            "lost": len(lost),
            "lost_number_taken": other_value,
            "unsent_tail": unsent,
            "examples": [list(t) for t in lost[:5]],
        }
