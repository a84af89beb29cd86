"""Results of a ihd sim run: what the collector holds, what was committed, summary.json, the display preview.

A mixin for ihd sim's Sim: it reads the firmware's commit lines and
status lines (collected by Sim), the collector's SQLite database, the
emulator's log and the NOR flash wear file, and decides the verdict.
"""

from __future__ import annotations

import bisect
import json
import shutil
import sqlite3
import subprocess
import sys

from ihd.sim.proc import HOUR, PY, START_UTC, STORE_PART, store_readings

HEAP_GROWTH_MAX = 2048  # bytes of after-GC heap, last quarter of a run vs the first


def heap_growth(series: list[tuple[int, int, int]]) -> int | None:
    """(utc, heap after a collection, boot) status samples -> the largest
    growth of any boot, None when no boot is long enough to judge.

    Per boot (each boot is a fresh heap: comparing one boot's start with
    another's end measured their different states, e.g. a store just
    wiped), over the boots with 8 samples or more. The floor of each
    quarter: a leak lifts it, while the heap after a collection swings by a
    batch buffer's 2.3 KB between status lines (a quarter's maximum then
    caught a swing, not a leak). At least 4 samples a window: with 2 (a
    boot of 9 status lines) both could catch the swing (CI, fault
    injection on the wheel: 2,272 B "growth" with no leak)."""
    by_boot: dict[int, list[int]] = {}
    for _, h, b in series:
        by_boot.setdefault(b, []).append(h)
    growth = None
    for hs in by_boot.values():
        if len(hs) >= 8:
            q = max(len(hs) // 4, 4)
            g = min(hs[-q:]) - min(hs[:q])
            growth = g if growth is None else max(growth, g)
    return growth


# the gas meter's readings: the collector keeps them in their own table
# (docs/wire-format.md, "Gas section"), in the device's one reading sequence
GAS_ROWS = " UNION ALL SELECT seq, utc_s, demand, delivered, 0, flags FROM gas WHERE device_id = ?"


class Results:
    def committed_seqs(self) -> set[int]:
        with self.lock:
            return {q for a, b in self.commits for q in range(a, b + 1)}

    def _query(self, q: str, row_factory=None) -> list:
        # The collector's database, read-only, this device's id as the one
        # parameter; [] while it does not exist yet.
        if not self.db.exists():
            return []
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        con.row_factory = row_factory
        try:
            return con.execute(q, (self.device_id,) * q.count("?")).fetchall()
        finally:
            con.close()

    def collector_rows(self) -> list[tuple[int, int]]:
        # electricity: what the accounting matches against the emulator's reports
        return self._query("SELECT seq, utc_s, demand_w, delivered_wh, flags FROM readings WHERE device_id = ?")

    def committed_vs_stored(self) -> dict | None:
        """Per seq: what the firmware committed (its flash, read back by its
        own store) against what the collector stored, every field. The commit
        lines give seq ranges only; the flash gives the values. Readings the
        ring log has evicted (oldest first) cannot be compared."""
        fl = store_readings(self.tree, self.state / "flash.bin", self.runtime)
        if fl is None:
            return None
        self.flash_seqs = set(fl)
        q = "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings WHERE device_id = ?" + GAS_ROWS
        # The collector names a reading (device, epoch, seq): after a lost
        # store the device numbers again under a new epoch, so one seq may
        # have a row per epoch. A flash reading is at the collector when a
        # row under its seq holds its values; it differs when rows under its
        # seq hold only other values.
        rows: dict[int, set[tuple]] = {}
        for r in self._query(q) if self.db.exists() else ():
            rows.setdefault(r[0], set()).add(tuple(r))
        # a commit line's reading the flash does not hold: evicted (the ring
        # is full; oldest_on_flash says how far back it goes) or lost
        gone = sum(1 for q in self.committed_seqs() if q not in fl)
        differ = [(fl[q], sorted(rows[q])[0]) for q in sorted(fl) if q in rows and fl[q] not in rows[q]]
        # On flash, not at the collector: unsent. Those committed before the
        # final drain began (all of them when the run was cut short) should
        # have been uploaded; the drain's own tail goes up at the next run.
        unsent = sorted(q for q in fl if q not in rows)
        last = getattr(self, "drain_from", None)
        missing = [q for q in unsent if last is None or q <= last]
        return {
            "on_flash": len(fl),
            "oldest_on_flash": min(fl, default=None),
            "compared": sum(1 for q in fl if q in rows),
            "differ": len(differ),
            "missing_at_collector": len(missing),
            "unsent_tail": len(unsent) - len(missing),
            "commit_lines_not_on_flash": gone,
            "examples": [list(map(list, d)) for d in differ[:5]] + [["missing", q] for q in missing[:5]],
        }

    def flash_erases(self) -> tuple[int, int]:
        wear = self.state / "flash.bin.wear"
        if not wear.exists():
            return 0, 0
        data = wear.read_bytes()
        counts = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
        off, size = STORE_PART
        store = counts[off // 4096 : (off + size) // 4096]
        return max(counts, default=0), max(store, default=0)

    def emulator_log(self) -> list[tuple[int, str, int]]:
        """(boot, kind, value) of every reading the emulator sent, in the order
        sent: demand reports (W), summation reports (Wh) and, when the
        emulator logs them, poll answers ("poll"). boot: the firmware boot the
        emulator served (one emulator per boot, see start_emulator)."""
        p = self.out / "emulator.jsonl"
        out: list[tuple[int, str, int]] = []
        if not p.exists():
            return out
        marks = self.emu_log_marks
        cut = getattr(self, "drain_utc", None)
        boot = 0
        pos = 0
        with open(p, "rb") as f:
            for raw in f:
                while boot < len(marks) and pos >= marks[boot]:
                    boot += 1
                pos += len(raw)
                try:
                    n = json.loads(raw)
                except ValueError:
                    continue
                k = n.get("kind")
                t = n.get("t")
                if cut is not None and isinstance(t, int) and t >= cut:
                    continue  # sent during the final drain: after the run
                if k == "poll":
                    out.append((boot, "poll", n.get("demand_w")))
                elif k in ("demand", "summation"):
                    out.append((boot, k, n.get("demand_w") if k == "demand" else n.get("delivered_wh")))
        return out

    def accounting(self, rows: list[tuple]) -> dict:
        """Where every reading the meter sent went, and where every stored one came from.

        Readings are matched in the order they were sent and stored (the
        emulator's log order, the collector's seq order), each report to a
        stored reading of its kind with the same value (an alignment with a
        short look-ahead on both sides): a demand report makes a reading with F_DEMAND alone, a
        summation report one with F_SUMMATION alone, a poll answer one with
        both. Time stamps are not compared (the firmware takes the meter's
        clock, the emulator's own lags by its start-up at each boot).
        Unmatched reports sent after the last stored reading of a boot that
        a power cut ended were in the device's RAM, or on the wire, when the
        power went: taken but never committed. Other unmatched reports never
        became readings (lost on the line, refused, link re-initialising).
        By construction:
          generated = stored_matched + lost_uncommitted_at_power_cut + not_taken
          stored    = stored_matched + stored_unmatched + stored_in_final_drain
        stored_unmatched are look-ahead misses only: the EZSP emulator logs
        its poll answers, RAVEn has no polls (readings_never_sent checks them).
        """
        sent = self.emulator_log()
        # The run ends where the final drain begins (the meter runs on
        # through it): later reports and rows are not accounted.
        last = getattr(self, "drain_from", None)
        n_rows = len(rows)
        rows = [r for r in rows if last is None or r[0] <= last]
        self.matched_seqs: set[int] = set()  # rows explained by a sent reading (never_sent)
        look = 8
        # Each boot is aligned on its own: its emulator's reports against
        # the rows it committed (a boot's seqs start at its first commit
        # line's; rows below belong to the boots before, those whose commit
        # line a cut swallowed included). Aligned across boots, the reports
        # a cut took (often more than the look-ahead) pulled the next boot's
        # rows onto the wrong reports (EZSP seed 2: 6 rows unmatched).
        firsts = sorted((q, b) for b, q in getattr(self, "boot_first_seq", {}).items())

        def boot_of(seq: int) -> int:
            b = firsts[0][1] if firsts else 0
            for q, bb in firsts:
                if q > seq:
                    break
                b = bb
            return b

        lists: dict[tuple[int, str], list[tuple[int, int]]] = {}
        for seq, _utc, demand, delivered, flags in sorted(rows):
            both = flags & 6
            kind = {6: "poll", 2: "demand", 4: "summation"}.get(both)  # F_DEMAND 2, F_SUMMATION 4
            if kind is not None:
                lists.setdefault((boot_of(seq), kind), []).append((seq, delivered if kind == "summation" else demand))
        # Align each boot's and kind's sent and stored values in order. At a
        # mismatch the shorter skip wins: sent reports that never became
        # readings (lost at a cut, refused) or stored rows of another
        # origin. A plain look-ahead on the stored side alone would jump over
        # a lost report to a later row of the same value and miscount both.
        sent_by: dict[tuple[int, str], list[int]] = {}
        for i, (boot, kind, _v) in enumerate(sent):
            sent_by.setdefault((boot if firsts else 0, kind), []).append(i)
        matched = 0
        hit: set[int] = set()  # indexes in sent that became a stored row
        for key, lst in lists.items():
            idx = sent_by.get(key, [])
            i = j = 0
            while i < len(idx) and j < len(lst):
                v = sent[idx[i]][2]
                if lst[j][1] == v:
                    hit.add(idx[i])
                    self.matched_seqs.add(lst[j][0])
                    matched += 1
                    i += 1
                    j += 1
                    continue
                ds = next((d for d in range(1, look) if i + d < len(idx) and sent[idx[i + d]][2] == lst[j][1]), look)
                dr = next((d for d in range(1, look) if j + d < len(lst) and lst[j + d][1] == v), look)
                if ds <= dr:
                    i += 1  # this report never became a row
                else:
                    j += 1  # this row is not this report
        unmatched: list[tuple[int, int]] = []  # (boot, index in sent)
        last_matched: dict[int, int] = {}  # boot -> index in sent of its last matched report
        for i, (boot, _kind, _v) in enumerate(sent):
            if i in hit:
                last_matched[boot] = i
            else:
                unmatched.append((boot, i))
        killed = set(self.killed_boots)
        at_cut = sum(1 for boot, i in unmatched if boot in killed and i > last_matched.get(boot, -1))
        # time the device was away: from each cut to the next boot's first commit
        off = 0
        for k in self.kill_utc:
            after = [c for c in self.commit_utc if c > k]
            off += (after[0] if after else self.end_utc) - k
        return {
            "readings_generated": len(sent),
            "stored_matched": matched,
            "lost_uncommitted_at_power_cut": at_cut,
            "not_taken": len(unmatched) - at_cut,
            "stored_unmatched": len(rows) - matched,
            "stored_in_final_drain": n_rows - len(rows),
            "polls_logged": sum(1 for s in sent if s[1] == "poll"),
            "device_off_s": off,
        }

    def never_sent(self, rows: list[tuple]) -> int:
        """Readings at the collector that match no report the emulator sent.

        Rows the in-order matching of accounting() explained are sent. Any
        other must match a report of its kind and value stamped within one
        real second of simulated time (speed s) either side: the emulator's
        clock lags the simulator's by its start-up at each boot, and the
        firmware stamps readings with its own clock until the meter's time
        arrives.
        """
        p = self.out / "emulator.jsonl"
        if not p.exists():
            return len(rows)
        by_kind: dict[str, dict[int, set]] = {"demand": {}, "summation": {}, "poll": {}}
        times = set()
        for line in p.read_text().splitlines():
            try:
                n = json.loads(line)
            except ValueError:
                continue
            k, t = n.get("kind"), n.get("t")
            if not isinstance(t, int):
                continue
            times.add(t)
            if k == "demand" or k == "poll":
                by_kind[k].setdefault(t, set()).add(n.get("demand_w"))
            elif k == "summation":
                by_kind["summation"].setdefault(t, set()).add(n.get("delivered_wh"))
        win = int(max(5, self.a.speed))
        # A reading taken before the clock was set (no F_TIME_VALID: a real
        # board's RTC reads 2000-01-01 after a power-on until the meter's time
        # arrives) is stamped with that clock; it was taken between the
        # nearest readings with a valid time before and after it.
        valid = sorted((r[0], r[1]) for r in rows if r[4] & 1)
        bad = 0
        for seq, utc, demand, delivered, flags in rows:
            if seq in getattr(self, "matched_seqs", ()):
                continue
            span = range(utc - win, utc + win + 1)
            if not flags & 1 and valid:
                i = bisect.bisect(valid, (seq, 0))
                lo = valid[max(0, i - 1)][1]
                hi = valid[min(i, len(valid) - 1)][1]
                span = range(min(lo, hi) - win, max(lo, hi) + win + 1)
            if flags & 6 == 6:  # F_DEMAND | F_SUMMATION: a poll answer
                ok = any(demand in by_kind["poll"].get(t, ()) for t in span)
            elif flags & 2:  # F_DEMAND
                ok = any(demand in by_kind["demand"].get(t, ()) for t in span)
            elif flags & 4:  # F_SUMMATION
                ok = any(delivered in by_kind["summation"].get(t, ()) for t in span)
            else:
                ok = any(t in times for t in span)
            bad += not ok
        return bad

    def live_count(self) -> int:
        # Readings streamed in real-time mode (the collector's "live" table).
        rows = self._query("SELECT COUNT(*) FROM live WHERE device_id = ?")
        return rows[0][0] if rows else 0

    def collector_device(self) -> dict:
        rows = self._query("SELECT * FROM devices WHERE device_id = ?", sqlite3.Row)
        return dict(rows[0]) if rows else {}

    def collector_rejects(self) -> dict:
        # Datagrams the collector refused, by reason: this device's, and
        # those it could not attribute (device 0: e.g. a replayed keep-alive).
        try:
            q = "SELECT reason, SUM(count) FROM rejects WHERE device_id IN (0, ?) GROUP BY reason"
            return dict(self._query(q))
        except sqlite3.OperationalError:
            return {}

    def summary(self) -> dict:
        days = max(self.a.hours / 24, 1e-9)
        fw_cpu = max(0.0, self.fw_cpu - self.boots * self.launcher_cpu)
        erase_max, erase_store = self.flash_erases()
        disp = self.display_done
        growth = heap_growth(self.heap_series)
        committed = self.committed_seqs()
        rows = self.collector_rows()
        at_collector = {r[0] for r in rows}
        cvs = self.committed_vs_stored()
        on_flash = getattr(self, "flash_seqs", set())
        dev = self.collector_device()
        acct = None if self.a.replay else self.accounting(rows)
        return {
            "protocol": self.a.protocol,
            "runtime": self.runtime,
            "version": self.status.get("version"),  # the running image's, as of the last status line
            "board": self.board,
            "hours": self.a.hours,
            "speed": self.a.speed,
            "heapsize": self.heapsize,
            # ESP32 board: the port emulation's own heap, added to --heap
            # (C modules on the device); heap_peak includes it.
            "heap_emulation": self.heap_emulation,
            "heap_peak_device": self.heap_peak - self.heap_emulation if self.heap_peak else 0,
            "heap_code": self.heap_code,
            "data_heap_budget": self.heapsize - self.heap_code,
            # A replayed capture is not decoded here (ihd capture does that).
            "readings_generated": None if self.a.replay else acct["readings_generated"],
            "readings_taken_reported": self.readings_fw,
            "readings_committed": len(committed),
            "readings_stored": len(rows),
            "readings_duplicated": dev.get("duplicates", 0),
            # committed, not at the collector and no longer on flash: gone
            "readings_lost": len(committed - at_collector - on_flash),
            # committed, still on flash, not uploaded yet (store and forward)
            "readings_unsent": len(committed & on_flash - at_collector),
            "readings_unlogged": len(at_collector - committed),
            "interrupted": getattr(self, "interrupted", False),
            # every committed reading still on flash, field by field at the collector
            "committed_vs_stored": cvs,
            # Rows matching no logged report, poll answer (EZSP) or demand/summation report.
            "readings_never_sent": None if self.a.replay else self.never_sent(rows),
            # generated = stored_matched + lost_uncommitted_at_power_cut + not_taken;
            # stored = stored_matched + stored_unmatched + stored_in_final_drain (docs/sim.md)
            "accounting": acct,
            "collector_rejects": self.collector_rejects(),
            "bytes_up": dev.get("bytes_in", 0),
            "bytes_down": dev.get("bytes_out", 0),
            "firmware_cpu_s": round(fw_cpu, 3),
            "firmware_cpu_raw_s": round(self.fw_cpu, 3),
            "launcher_cpu_s_per_boot": round(self.launcher_cpu, 4),
            "firmware_cpu_s_per_day": round(fw_cpu / days, 3),
            "realtime_factor": round(86400 / max(fw_cpu / days, 1e-9)),
            "heap_peak": self.heap_peak,
            "data_heap_peak": self.heap_peak - self.heap_code if self.heap_peak else 0,
            "heap_after_gc_by_day": [self.heap_by_day[d] for d in sorted(self.heap_by_day)],
            "heap_growth": growth,
            "memory_errors": self.mem_errors,
            "flash_erases_max_per_sector": erase_max,
            "store_erases_max_per_sector": erase_store,
            "display_full_refreshes": disp["display_full_refreshes"],
            "display_partial_refreshes": disp["display_partial_refreshes"],
            "faults": sorted(self.faults_seen),
            "faults_raised": {str(k): v for k, v in sorted(self.faults_seen.items()) if v},
            "boots": self.boots,
            "resets": self.resets,
            "power_cuts": dict(self.cuts_done),
            "crashes": self.crashes,
            "watchdog_resets": self.watchdog_resets,
            "aborted": self.aborted,
            "ota": self.status.get("ota"),
            "ota_history": self.ota_history,
            "events": [f"{(t - START_UTC) / HOUR:.2f} h: {e}" for t, e in self.events],
            # --inject: each fault and how long the device was mute after it;
            # every reading committed in the run, looked up by value
            "injected": self.injection_results() if getattr(self, "injections", None) else [],
            "by_value": self.by_value() if getattr(self, "injections", None) else None,
            "live_readings": self.live_count(),
            # the history screen's days as of the last status line: closed
            # days known (from the meter or our own daily totals), of 8
            "history_days": self.history_days(),
        } | self.cpu_profile()

    def history_days(self) -> int | None:
        h = self.status.get("history")
        days = h.get("days") if isinstance(h, dict) else None
        return None if not isinstance(days, list) else sum(d is not None for d in days[:-1])

    def cpu_profile(self) -> dict:
        # --cpu-profile: each task's own time (ms, summed over boots; as of
        # each boot's last status line) and the process CPU the firmware saw
        # itself; the difference is the event loop outside the tasks.
        if not self.a.cpu_profile:
            return {}
        tasks = dict(self.cpu_tasks.most_common())
        calls = {k: [n, self.calls_ms[k]] for k, n in self.calls.most_common()}
        return ({"calls_by_function": calls} if calls else {}) | {
            "cpu_by_task_ms": tasks,
            "cpu_resumes_by_task": {k: self.cpu_resumes[k] for k in tasks},
            "cpu_process_ms_seen": self.cpu_process_ms,
            "cpu_outside_tasks_ms": self.cpu_process_ms - sum(tasks.values()),
        }

    def verdict(self) -> int:
        s = self.summary()
        (self.out / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
        print(json.dumps(s, indent=1))
        ok = not (s["memory_errors"] or s["crashes"] or s["watchdog_resets"] or s["aborted"])
        ok = ok and s["readings_lost"] == 0 and not s["readings_never_sent"]
        cvs = s["committed_vs_stored"]
        ok = ok and cvs is not None and not cvs["differ"]
        # A run cut short (Ctrl-C) leaves its last batch unsent on flash:
        # not a failure. A run that ended must have uploaded every reading
        # committed before its final drain.
        ok = ok and (s.get("interrupted") or not cvs["missing_at_collector"])
        # state lost between boots (--inject): no committed reading may be
        # missing at the collector by value, whatever its number
        bv = s.get("by_value")
        ok = ok and (bv is None or not bv["lost"] or bool(s.get("interrupted")))
        want = getattr(getattr(self, "a", None), "expect_history_days", None)
        if want and (s.get("history_days") or 0) < want:
            print(f"sim: history: {s.get('history_days')} closed days known, expected {want}", file=sys.stderr)
            ok = False
        # Steady state: no heap growth from the first quarter of the run to
        # the last (None: too short a run to tell), and the data never
        # reached its budget (the code's heap is measured, not budgeted).
        heap_ok = s["heap_growth"] is None or s["heap_growth"] <= HEAP_GROWTH_MAX
        heap_ok = heap_ok and s["data_heap_peak"] < s["data_heap_budget"]
        if not heap_ok:
            print(
                f"sim: heap: growth {s['heap_growth']} B (at most {HEAP_GROWTH_MAX}),"
                f" data peak {s['data_heap_peak']} of {s['data_heap_budget']} B",
                file=sys.stderr,
            )
        print(self.verdict_line(s, ok and heap_ok), file=sys.stderr)
        return 0 if ok and heap_ok else 1

    @staticmethod
    def verdict_line(s: dict, ok: bool) -> str:
        """The run in one line: what a person at the terminal reads last."""
        cvs = s["committed_vs_stored"] or {}
        how = "stopped by Ctrl-C" if s.get("interrupted") else "ended"
        g = s.get
        line = (
            f"sim: {'PASS' if ok else 'FAIL'}: {how}; {g('readings_committed', '?')} readings committed,"
            f" {g('readings_stored', '?')} at the collector ({cvs.get('differ', '?')} differ),"
            f" {g('readings_unsent', '?')} unsent (on flash, uploaded on the next run with --keep-state),"
            f" {g('readings_lost', '?')} lost"
        )
        for k, what in (("memory_errors", "MemoryError"), ("crashes", "crashes"), ("watchdog_resets", "watchdog")):
            if s.get(k):
                line += f", {s[k]} {what}"
        if s.get("aborted"):
            line += f"; aborted: {s['aborted']}"
        return line

    def render_display(self) -> None:
        # The running boot's refreshes only: each boot records the panel bus
        # afresh (panel.rec is opened "wb"), and the previews follow it.
        # Before, refresh*.png of the previous boot stayed in DIR/display and
        # display.png showed its last frame until the new boot drew.
        with self.render_lock:
            rec = self.state / "panel.rec"
            shots = self.out / "display"
            boot = getattr(self, "boots", 0)
            if shots.exists() and getattr(self, "shots_boot", None) != boot:
                shutil.rmtree(shots)
            self.shots_boot = boot
            if not rec.exists() or rec.stat().st_size == 0:
                self.preview_placeholder(boot)
                return
            r = subprocess.run(
                [PY, "-m", "ihd.panel", "render", str(rec), "--out", str(shots)],
                capture_output=True,
                text=True,
            )
            pngs = sorted(shots.glob("refresh*.png"), key=lambda p: int("0" + "".join(filter(str.isdigit, p.stem))))
            if r.returncode:
                print(f"sim: display preview failed: {r.stderr.strip()[-500:]}", file=sys.stderr)
                return
            if not pngs:
                self.preview_placeholder(boot)
                return
            shutil.copyfile(pngs[-1], self.out / "display.png")
            print(f"sim: display preview {self.out / 'display.png'} ({len(pngs)} refreshes)", file=sys.stderr)

    def preview_placeholder(self, boot: int) -> None:
        # This boot has not drawn yet. (A real e-ink panel would still show
        # the previous boot's last frame; the preview says so rather than
        # pass that frame off as this boot's.)
        from PIL import Image, ImageDraw

        img = Image.new("L", (296, 128), 255)
        d = ImageDraw.Draw(img)
        d.text((8, 40), f"boot {boot}: starting", fill=0)
        d.text((8, 60), "nothing drawn yet in this boot", fill=0)
        img.save(self.out / "display.png")
