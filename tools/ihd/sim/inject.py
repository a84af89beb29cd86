"""Fault injection for the simulator (`ihd sim run --inject H:KIND[:ARG]`).

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
                      (ihd provision make), registered with the collector
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

from ihd.sim.proc import HOUR, ROOT, START_UTC, STORE_PART, esp32_push, store_readings

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
    """Mixin for the simulator (ihd sim Sim)."""

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
        self.destroyed: set[tuple] = set()
        self.inject_rng = random.Random(self.a.seed * 7919 + 1)
        return sorted(out)

    def inject(self, kind: str, arg: str) -> None:
        rec = {"at_h": round((self.now() - START_UTC) / HOUR, 3), "kind": kind + (f":{arg}" if arg else "")}
        rec["at_real"] = time.time()
        # when the device could be heard again: once the collector listens
        # again for a collector fault (ops.py _collector_line: its start-up
        # on a loaded host took 0.5 s, 150 simulated seconds at 300x), at
        # the next boot for a state fault (note_boot)
        rec["boot_real"] = None
        rec["heard_s"] = rec["stored_s"] = None
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
            fl = store_readings(self.tree, flash, self.runtime) or {}
            self.eras.append(fl)
            # readings only the device held when the fault erased them: the
            # fault's own toll, not the firmware's (nothing could send them)
            have = self.value_rows()
            self.destroyed |= {t for t in fl.values() if t not in have}
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
        self.tool("ihd.provision.tool", *args)
        cfg = json.loads(cfg_path.read_text())
        if self.board != "unix":
            esp32_push(self.board, self.state, cfg_path)
        self.tool(
            "ihd.collector.ingest", "--db", str(self.db), "add-device", str(cfg["device_id"]),
            "--key", cfg["key"], "--key-id", str(cfg["key_id"]),
        )  # fmt: skip

    def note_boot(self) -> None:
        # the firmware (re)started: the device may speak from now on
        for rec in getattr(self, "injections", ()):
            if rec["boot_real"] is None and rec["kind"] not in COLLECTOR_KINDS:
                rec["boot_real"] = time.time()

    def awaiting_heard(self) -> bool:
        """A collector fault's first datagram after it is not seen yet: look
        at every turn of the loop, not every status line (last_seen is the
        newest datagram at the look: 0.5 s real is 150 s at 300x)."""
        return any(
            r["heard_s"] is None and r["boot_real"] is not None and r["kind"] in COLLECTOR_KINDS
            for r in getattr(self, "injections", ())
        )

    def watch_injections(self) -> None:
        """(Every status line.) After each fault: when the collector first
        took an authentic datagram from the device again (its last_seen),
        and first stored a reading again, in simulated seconds from the
        boot after the fault (from the fault itself for a collector fault)."""
        for rec in getattr(self, "injections", ()):
            if rec["boot_real"] is None or rec["stored_s"] is not None:
                continue
            try:
                seen = self._query("SELECT last_seen, hello_at FROM devices WHERE device_id = ?")
                q = "SELECT MIN(received_at) FROM readings WHERE device_id = ? AND received_at > "
                stored = self._query(q + repr(rec["boot_real"]))
            except sqlite3.OperationalError:
                continue  # the collector is writing its schema: next time
            # After a boot, heard = the collector took its HELLO (hello_at, exact);
            # last_seen is only the newest datagram at this look, which moved the
            # figure by a look's interval (20-95 s for a device answered at 5 s).
            # A collector fault has no boot: the first datagram seen after it.
            if rec["heard_s"] is None and seen:
                last, hello = seen[0]
                boot = rec["kind"].split(":")[0] not in COLLECTOR_KINDS
                t = hello if boot else last
                if t and t > rec["boot_real"]:
                    rec["heard_s"] = round((t - rec["boot_real"]) * self.a.speed)
            if stored and stored[0][0]:
                rec["stored_s"] = round((stored[0][0] - rec["boot_real"]) * self.a.speed)

    # -- results -------------------------------------------------------------------
    def injection_results(self) -> list[dict]:
        """Per fault: heard_s, simulated seconds from the boot after it (the
        fault itself for a collector fault) until the collector took an
        authentic datagram from the device (None: mute to the end), and
        stored_s until it stored a reading (batches wait up to
        batch_max_age_s, 1.5 h, unless full)."""
        self.watch_injections()
        return [{k: rec[k] for k in ("at_h", "kind", "heard_s", "stored_s")} for rec in self.injections]

    def by_value(self) -> dict:
        """Every reading committed in the run (each era's store read back
        before it was destroyed, and the final flash), looked up by value at
        the collector: (utc_s, demand, delivered, received, flags) under the
        same seq. `lost`: none there (the collector holds another value under
        its number, or nothing); `unsent`: still on the final flash."""
        final = store_readings(self.tree, self.state / "flash.bin", self.runtime) or {}
        rows = self.value_rows()
        seqs = {r[0] for r in rows}
        seen: set[tuple] = set()
        lost, unsent, destroyed, other_value = [], 0, 0, 0
        for era in [*self.eras, final]:
            for t in era.values():
                if t in seen:
                    continue
                seen.add(t)
                if t in rows:
                    continue
                if era is final and self.drain_from is not None and t[0] > self.drain_from:
                    unsent += 1  # committed during the final drain
                elif t in self.destroyed:
                    destroyed += 1
                else:
                    lost.append(t)
                    other_value += t[0] in seqs
        return {
            "committed": len(seen),
            "at_collector": len(seen) - len(lost) - unsent - destroyed,
            # not uploaded yet when the fault erased the device's store
            "destroyed_by_fault": destroyed,
            "lost": len(lost),
            "lost_number_taken": other_value,  # the collector holds another value under the seq
            "unsent_tail": unsent,
            "examples": [list(t) for t in lost[:5]],
        }

    def value_rows(self) -> set[tuple]:
        # (seq, utc, demand, delivered, received, flags) of every reading the
        # collector holds for the device, whatever its epoch
        q = "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings WHERE device_id = ?"
        q += " UNION ALL SELECT seq, utc_s, demand, delivered, 0, flags FROM gas WHERE device_id = ?"  # sim/results.py
        return {tuple(r) for r in self._query(q)} if self.db.exists() else set()
