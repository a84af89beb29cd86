"""The collector's reports from its tables: per-device statistics (bytes, datagrams,
readings, traffic kinds, rejects) and the CSV export. A mixin of collector_store.Store."""

from __future__ import annotations

import csv

from ihd.uplink import wire


class Reports:
    db: object  # the Store's sqlite3 connection

    def stats(self) -> dict:
        self.flush_rejects()  # type: ignore[attr-defined]
        devs = {}
        for row in self.db.execute(
            "SELECT device_id, bytes_in, bytes_out, dgrams_in, dgrams_out, duplicates, last_seen, "
            "(SELECT count(*) FROM readings r WHERE r.device_id=d.device_id) FROM devices d"
        ):
            devs[row[0]] = {
                "bytes_in": row[1],
                "bytes_out": row[2],
                "datagrams_in": row[3],
                "datagrams_out": row[4],
                "wire_bytes_in": row[1] + wire.IP_UDP_OVERHEAD * row[3],
                "wire_bytes_out": row[2] + wire.IP_UDP_OVERHEAD * row[4],
                "duplicate_readings": row[5],
                "last_seen": row[6],
                "readings": row[7],
                "traffic": {},
            }
        for dev, kind, n, nbytes in self.db.execute("SELECT device_id, kind, datagrams, bytes FROM traffic"):
            if dev in devs:
                devs[dev]["traffic"][kind] = {
                    "datagrams": n,
                    "bytes": nbytes,
                    "wire_bytes": nbytes + wire.IP_UDP_OVERHEAD * n,
                }
        rejects: dict[str, int] = {}
        for _dev, reason, count in self.db.execute("SELECT device_id, reason, count FROM rejects"):
            rejects[reason] = rejects.get(reason, 0) + count
        cmds = self.db.execute("SELECT count(*), count(done) FROM commands").fetchone()
        return {"devices": devs, "rejects": rejects, "commands_queued": cmds[0], "commands_done": cmds[1]}

    def export_csv(self, fh, device_id: int | None = None) -> int:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["utc_s", "demand_w", "delivered_wh", "received_wh", "flags", "device_id", "seq", "epoch"])
        q = "SELECT utc_s, demand_w, delivered_wh, received_wh, flags, device_id, seq, epoch FROM readings"
        args: tuple = ()
        if device_id is not None:
            q += " WHERE device_id=?"
            args = (device_id,)
        n = 0
        for row in self.db.execute(q + " ORDER BY device_id, utc_s, epoch, seq", args):
            w.writerow(row)
            n += 1
        return n
