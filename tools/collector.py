#!/usr/bin/env python3
"""Uplink collector: receives, authenticates, decodes, de-duplicates and ACKs device
datagrams, pushes commands; the asyncio server and the CLI. The SQLite tables,
accounting, stats and CSV export are in collector_store.py.

    collector.py add-device --db ihd.sqlite 4097 --key HEX [--key-id 0]
    collector.py serve --db ihd.sqlite --listen 0.0.0.0:4700 [--listen [::]:4700 ...]
    collector.py realtime --db ihd.sqlite 4097 [--seconds 600]
    collector.py command --db ihd.sqlite 4097 ota HEXPAYLOAD
    collector.py export-csv --db ihd.sqlite [--device 4097] [-o readings.csv]
    collector.py stats --db ihd.sqlite [--json]

Everything lives in one SQLite database (devices and keys, readings keyed by
(device, reading seq) so duplicates are ignored, queued commands, byte and
reject counters), so the CLI sub-commands talk to a running `serve` through
it: `realtime` queues a command that `serve` piggy-backs on its next reply
to that device (an ACK, or the answer to a keep-alive). Datagrams that are
forged, replayed, truncated, oversized or random are counted by reason and
dropped; no datagram can stop the server. Wire format: docs/wire-format.md.
"""

from __future__ import annotations

import venvexec  # noqa: F401  (first: run as a script by another Python, re-runs it under .venv)

# isort: split

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import uplink_codec as codec  # noqa: E402
import uplink_wire as wire  # noqa: E402
from collector_store import Store  # noqa: E402

# A command is pushed unasked to the address a device was last heard from, if
# that was at most this long ago: it gets through while the home router still
# holds the mapping (docs/uplink.md, "Keep-alive and real-time"). Longer than
# any keep-alive interval, so a live device is always tried; a device silent
# for longer is presumed gone from that address.
PUSH_WINDOW_S = 600


class Collector(Store):
    """Protocol logic over one SQLite database (collector_store.Store: tables,
    accounting, stats, CSV); `handle()` is the whole server minus sockets."""

    def __init__(self, db_path: str | Path, clock=time.time, push_window_s: float = PUSH_WINDOW_S) -> None:
        super().__init__(db_path)
        self.clock = clock
        self.windows: dict[int, wire.Window] = {}
        self.errors = 0
        # Where each device was last heard from: (addr, via, time). A command is
        # pushed there at once (see push_pending); `sender(datagram, addr, via)`
        # is set by serve(), `via` being the socket the device reached.
        self.routes: dict[int, tuple] = {}
        self.push_window_s = push_window_s
        self.sender = None
        self.ka = wire.KeepaliveIndex()
        for dev, key, top in self._devices():
            self.ka.refresh(dev, key, top)

    # -- administration --------------------------------------------------------
    def add_device(self, device_id: int, key: bytes, key_id: int = 0) -> None:
        if len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {len(key)}")
        top = self._upsert_device(device_id, key, key_id)
        self.windows.pop(device_id, None)  # a new key starts the window afresh (collector_store)
        self.ka.refresh(device_id, key, top)

    def queue_command(self, device_id: int, kind: int, payload: bytes) -> int:
        """Queue a command; sent with every reply to the device until it reports DONE."""
        if not 0 < kind < 256:
            raise ValueError(f"command kind {kind} is not 1..255")
        if len(payload) > wire.MAX_DGRAM - wire.REPLY_HEAD - wire.TAG - 7:
            raise ValueError(f"command payload of {len(payload)} bytes does not fit one datagram")
        if self._device(device_id) is None:
            raise KeyError(f"device {device_id} is not registered")
        cid = self._insert_command(device_id, kind, payload, self.clock())
        self.push_pending()
        return cid

    def request_realtime(self, device_id: int, seconds: int = 600) -> int:
        return self.queue_command(device_id, wire.CMD_REALTIME, struct.pack(">H", min(seconds, 0xFFFF)))

    # -- datagrams --------------------------------------------------------------
    def _window(self, device_id: int, top: int) -> wire.Window:
        w = self.windows.get(device_id)
        if w is None:
            w = self.windows[device_id] = wire.Window(top)
        return w

    def handle(self, data: bytes, addr, via=None) -> list[bytes]:
        """One datagram in; the replies to send back to `addr` out. Never raises on bad input.
        `via`: the socket it came in on (where a later push to this device leaves from)."""
        try:
            return self._handle(bytes(data), addr, via)
        except Exception as e:  # a bug must cost one datagram, never the server
            self.errors += 1
            print(f"collector: internal error on a datagram from {addr}: {e!r}", file=sys.stderr)
            try:
                self._reject(0, "internal_error")
            except sqlite3.Error:
                pass
            return []

    def _handle(self, data: bytes, addr, via) -> list[bytes]:
        try:
            d = wire.parse(data)
        except wire.WireError as e:
            self._reject(0, e.reason)
            return []
        if d.type in (wire.T_REPLY, wire.T_REFUSE):
            self._reject(d.device_id, "bad_type")  # collector->device type sent to us (reflection)
            return []
        if d.type == wire.T_KEEPALIVE:
            hit = self.ka.lookup(d.raw)
            if hit is None:  # forged, replayed, or too far ahead: the device resyncs with a HELLO
                self._reject(0, "bad_keepalive")
                return []
            d.device_id, d.seq = hit
        dev = self._device(d.device_id)
        if dev is None:
            self._reject(0, "unknown_device")
            return []
        kid, key, top, nonce, challenge = dev
        win = self._window(d.device_id, top)
        if d.type != wire.T_KEEPALIVE:
            if d.key_id != kid:
                self._reject(d.device_id, "unknown_key")
                return []
            if not wire.verify(d, key):
                self._reject(d.device_id, "bad_tag")
                return []
        now = self.clock()
        if not win.fresh(d.seq):
            if d.type != wire.T_HELLO or (d.nonce == nonce and win.seen(d.seq)):
                self._reject(d.device_id, "replay")  # a copy of what we took
                return []
            if not (challenge and d.nonce == challenge):
                return self._refuse_stale(d, key, kid, win, challenge, addr, now)
            # The device answered our challenge (it could not go above the
            # window): nothing but this exchange can be fresh, start afresh.
            win = self.windows[d.device_id] = wire.Window()
        out: list[bytes] = []
        ack = (0, 0)
        want_reply = d.type == wire.T_HELLO
        kind_in = {wire.T_KEEPALIVE: "keepalive", wire.T_HELLO: "hello", wire.T_DONE: "done", wire.T_HEALTH: "health"}
        kind_in = kind_in.get(d.type, "data")
        self.db.execute("BEGIN")
        try:
            if d.type == wire.T_DATA:
                try:
                    rows = codec.decode(d.payload)
                    if len(rows) != d.count:
                        raise codec.CodecError(f"payload has {len(rows)} readings, header says {d.count}")
                except codec.CodecError:
                    self.db.execute("ROLLBACK")
                    self._reject(d.device_id, "malformed")
                    return []
                if d.flags & wire.DF_REALTIME:
                    kind_in = "realtime"
                    self._store_live(d.device_id, d.epoch, d.first, rows, now)
                elif self._conflicts(d.device_id, d.epoch, d.first, rows):
                    # Other values under these numbers: store nothing, ACK
                    # nothing, tell the device to number under a new epoch.
                    kind_in = "data_conflict"
                    self._reject(d.device_id, "conflict")
                    out.append(
                        wire.build_refuse(key, d.device_id, kid, self._next_seq(), d.seq, wire.R_CONFLICT, 0, 0, nonce)
                    )
                    self._count(d.device_id, "refuse", len(out[0]))
                else:
                    if self._store_readings(d.device_id, d.epoch, d.first, rows, now) == d.count:
                        kind_in = "data_repeat"
                    ack = (d.first, d.count)
                    want_reply = True
            elif d.type == wire.T_DONE:
                self._mark_done(d.device_id, d.cmd_id, d.status, now)
            elif d.type == wire.T_HEALTH:
                self._store_health(d.device_id, d.seq, d.health, now)  # committed before the REPLY leaves
                want_reply = True  # the REPLY echoing its seq is the device's ACK
            elif d.type == wire.T_HELLO:
                nonce = d.nonce  # replies are bound to this boot from now on
                self._set_boot(d.device_id, d.nonce, d.epoch, d.cmd_mark)
            win.accept(d.seq)
            self.routes[d.device_id] = (addr, via, now)
            cmds = [] if out else self._pending(d.device_id)
            if d.type == wire.T_DONE and not want_reply and self._in_flight(cmds):
                # The device has commands of an earlier reply in hand: their
                # DONEs are coming, and the next reply goes with the last of
                # them (or with the next keep-alive). Answering every DONE
                # with the pending list made every re-sent command a DONE and
                # every DONE a reply: a storm, with many pending.
                cmds = []
            if want_reply or cmds:
                reply = wire.build_reply(
                    key, d.device_id, kid, self._next_seq(), d.seq, ack[0], ack[1], cmds, nonce=nonce
                )
                out.append(reply)
                if cmds:
                    self._mark_sent(cmds)
                kind_out = "command" if cmds else "ack" if ack[1] else "hello_reply"
                if kind_out == "hello_reply" and d.type == wire.T_HEALTH:
                    kind_out = "health_ack"
                self._count(d.device_id, kind_out, len(reply))
            self._count(d.device_id, kind_in, len(data))
            self._account_in(d.device_id, win.top, len(data), sum(len(r) for r in out), len(out), addr, now)
            self.db.execute("COMMIT")  # readings are durable before the ACK leaves
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.ka.refresh(d.device_id, key, win.top)
        return out

    def _refuse_stale(self, d, key: bytes, kid: int, win: wire.Window, challenge: int, addr, now: float) -> list[bytes]:
        """An authentic HELLO below the window: a device that lost its sequence numbers (or
        a replay, which cannot use the answer: it is tagged over the HELLO's nonce, and the
        device takes only what echoes its own recent seqs). Tell it the lowest seq we would
        take, and a challenge for when it cannot go that high: a HELLO carrying the
        challenge as its nonce restarts the window. The challenge stays until answered, so
        replays cannot move it. Never changes the window, route or boot."""
        self.db.execute("BEGIN")
        try:
            if not challenge:
                challenge = secrets.randbits(32) or 1
                self._set_challenge(d.device_id, challenge)
            min_seq = min(win.top + 1, wire.SEQ_LIMIT - 1)
            ref = wire.build_refuse(
                key, d.device_id, kid, self._next_seq(), d.seq, wire.R_STALE, min_seq, challenge, d.nonce
            )
            self._reject(d.device_id, "stale")
            self._count(d.device_id, "hello_stale", len(d.raw))
            self._count(d.device_id, "refuse", len(ref))
            self._account_out(d.device_id, len(ref))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [ref]

    def push_pending(self) -> int:
        """Send each command that no reply has carried yet to its device now, to the
        address the device's last authentic datagram came from (if within
        push_window_s), echoing that datagram's seq. Behind a NAT it arrives while
        the mapping lives; otherwise the reply to the next keep-alive carries it (as
        it carries every command until DONE). Returns the number of pushes."""
        if self.sender is None:
            return 0
        n = 0
        for dev in self._unsent_devices():
            route = self.routes.get(dev)
            win = self.windows.get(dev)
            if route is None or win is None or self.clock() - route[2] > self.push_window_s:
                continue
            row = self._device(dev)
            cmds = self._pending(dev)
            if row is None or not cmds:
                continue
            reply = wire.build_reply(row[1], dev, row[0], self._next_seq(), win.top, 0, 0, cmds, nonce=row[3])
            self.db.execute("BEGIN")
            self._mark_sent(cmds)
            self._account_out(dev, len(reply))
            self._count(dev, "push", len(reply))
            self.db.execute("COMMIT")
            self.sender(reply, route[0], route[1])
            n += 1
        return n


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, col: Collector) -> None:
        self.col = col
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        for reply in self.col.handle(data, addr, self.transport):
            if self.transport is not None:
                self.transport.sendto(reply, addr)

    def error_received(self, exc) -> None:
        pass  # ICMP errors (device gone): nothing to do, the device retries


def parse_listen(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _send(data: bytes, addr, via) -> None:
    if via is not None and not via.is_closing():
        via.sendto(data, addr)


async def _push_loop(col: Collector, poll_s: float) -> None:
    # Commands queued by another process (the CLI) reach serve through the
    # database; those queued in this process are pushed by queue_command().
    while True:
        await asyncio.sleep(poll_s)
        try:
            col.push_pending()
        except sqlite3.Error as e:  # a locked database: next round
            print(f"collector: push: {e}", file=sys.stderr)


async def serve(
    col: Collector, listen: list[tuple[str, int]], stats_every: float = 0, ready=None, poll_s: float = 1.0
) -> None:
    loop = asyncio.get_running_loop()
    transports = []
    for host, port in listen:
        t, _ = await loop.create_datagram_endpoint(lambda: _Protocol(col), local_addr=(host, port))
        transports.append(t)
        print(f"collector: listening on {host}:{port}", file=sys.stderr, flush=True)
    col.sender = _send
    pusher = asyncio.ensure_future(_push_loop(col, poll_s))
    if ready is not None:
        ready.set()
    try:
        while True:
            await asyncio.sleep(stats_every or 3600)
            if stats_every:
                s = col.stats()
                n = sum(d["readings"] for d in s["devices"].values())
                print(f"collector: {len(s['devices'])} devices, {n} readings, rejects {s['rejects']}", file=sys.stderr)
    finally:
        col.sender = None
        pusher.cancel()
        for t in transports:
            t.close()


def _kind(s: str) -> int:
    names = {v: k for k, v in wire.CMD_NAMES.items()}
    if s in names:
        return names[s]
    try:
        return int(s, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"command kind {s!r}: use {', '.join(names)} or a number 1..255")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="collector.sqlite", help="SQLite database (default: %(default)s)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="receive datagrams until interrupted")
    p.add_argument("--listen", type=parse_listen, action="append", help="HOST:PORT (repeatable)")
    p.add_argument("--stats-every", type=float, default=60, help="progress line every S seconds (0: never)")
    p.add_argument("--poll", type=float, default=1.0, help="look for commands queued by the CLI every S seconds")
    p.add_argument(
        "--push-window",
        type=float,
        default=PUSH_WINDOW_S,
        help="push a new command at once if the device was heard from in the last S seconds (default: %(default)s)",
    )
    p = sub.add_parser("add-device", help="register a device and its key")
    p.add_argument("device_id", type=int)
    p.add_argument("--key", help="64 hex digits (default: generate and print one)")
    p.add_argument("--key-id", type=int, default=0)
    p = sub.add_parser("realtime", help="ask a device to stream live readings")
    p.add_argument("device_id", type=int)
    p.add_argument("--seconds", type=int, default=600)
    p = sub.add_parser("command", help="queue any command for a device")
    p.add_argument("device_id", type=int)
    p.add_argument("kind", type=_kind, help="realtime, ota or a number")
    p.add_argument("payload", help="payload in hex ('' for none)")
    p = sub.add_parser("export-csv", help="write stored readings as CSV")
    p.add_argument("--device", type=int)
    p.add_argument("-o", "--output", help="file (default: stdout)")
    p = sub.add_parser("stats", help="bytes, readings and rejects per device")
    p.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd not in ("serve", "add-device") and not os.path.isfile(a.db):
        # before: `collector.py stats` made an empty collector.sqlite in
        # whatever folder it ran in, and reported nothing
        print(
            f"collector: no database {a.db}: give --db PATH (the file `serve` and `add-device` use;"
            " the simulator's is run/sim/collector.sqlite)",
            file=sys.stderr,
        )
        return 2
    try:
        col = Collector(a.db, push_window_s=getattr(a, "push_window", PUSH_WINDOW_S))
    except sqlite3.DatabaseError as e:
        print(f"collector: {a.db} is not a collector database ({e})", file=sys.stderr)
        return 2
    try:
        if a.cmd == "serve":
            asyncio.run(serve(col, a.listen or [("0.0.0.0", 4700)], a.stats_every, poll_s=a.poll))
        elif a.cmd == "add-device":
            key = bytes.fromhex(a.key) if a.key else secrets.token_bytes(32)
            col.add_device(a.device_id, key, a.key_id)
            print(key.hex())
        elif a.cmd in ("realtime", "command"):
            if a.cmd == "realtime":
                cid = col.request_realtime(a.device_id, a.seconds)
            else:
                cid = col.queue_command(a.device_id, a.kind, bytes.fromhex(a.payload))
            print(f"command {cid} queued for device {a.device_id}; sent with the next reply to it")
        elif a.cmd == "export-csv":
            if a.output:
                with open(a.output, "w", newline="") as fh:
                    n = col.export_csv(fh, a.device)
            else:
                n = col.export_csv(sys.stdout, a.device)
            print(f"{n} readings exported", file=sys.stderr)
        elif a.cmd == "stats":
            s = col.stats()
            if a.json:
                print(json.dumps(s, indent=1))
            else:
                for dev, v in s["devices"].items():
                    print(
                        f"device {dev}: {v['readings']} readings, in {v['wire_bytes_in']} B "
                        f"({v['datagrams_in']} datagrams), out {v['wire_bytes_out']} B, "
                        f"{v['duplicate_readings']} duplicates ignored"
                    )
                print("rejected:", ", ".join(f"{k} {v}" for k, v in sorted(s["rejects"].items())) or "none")
    except (ValueError, KeyError) as e:
        print(f"collector: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
