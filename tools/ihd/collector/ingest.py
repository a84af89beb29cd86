"""Uplink collector: receives, authenticates, decodes, de-duplicates and ACKs device
datagrams, enforces the per-device limits, pushes commands; and the CLI. The
asyncio server is collector/server.py; the SQLite transactions, tables and
accounting collector/store.py (schema: collector/schema.py, stats and CSV:
collector/reports.py).

    ihd collector add-device --db ihd.sqlite 4097 --key HEX [--key-id 0]
    ihd collector serve --db ihd.sqlite --listen 0.0.0.0:4700 [--listen [::]:4700 ...]
    ihd collector realtime --db ihd.sqlite 4097 [--seconds 600]
    ihd collector command --db ihd.sqlite 4097 ota HEXPAYLOAD
    ihd collector export-csv --db ihd.sqlite [--device 4097] [-o readings.csv]
    ihd collector stats --db ihd.sqlite [--json]

Everything lives in one database, SQLite (`--db PATH`, the default) or
PostgreSQL (`--db postgresql://...`: collector/db.py, collector/pg.py,
docs/fleet.md) (devices and keys, readings keyed by
(device, reading seq) so duplicates are ignored, queued commands, byte and
reject counters), so the CLI sub-commands talk to a running `serve` through
it: `realtime` queues a command that `serve` piggy-backs on its next reply
to that device (an ACK, or the answer to a keep-alive). Datagrams that are
forged, replayed, truncated, oversized or random are counted by reason and
dropped; no datagram can stop the server. Wire format: docs/wire-format.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import struct
import sys
import time
from pathlib import Path

from ihd.collector.db import db_errors, is_postgres, open_collector, sqlite_path  # noqa: E402
from ihd.collector.server import crash_hook, parse_listen, serve  # noqa: E402,F401  (serve: part of this module's API)
from ihd.collector.store import Commit, Outcome, Store  # noqa: E402
from ihd.uplink import (
    codec,  # noqa: E402
    wire,  # noqa: E402
)

# A command is pushed unasked to the address a device was last heard from, if
# that was at most this long ago: it gets through while the home router still
# holds the mapping (docs/uplink.md, "Keep-alive and real-time"). Longer than
# any keep-alive interval, so a live device is always tried; a device silent
# for longer is presumed gone from that address.
PUSH_WINDOW_S = 600


# A keep-alive moves the route unless one of the next KA_LATE seqs is taken
# already (docs/uplink.md, "Keep-alive and routing"): a late one (reordered
# across a NAT change, or captured and re-sent from elsewhere) moves nothing,
# and a forged one that matched by chance holds the route against the device's
# own keep-alives for at most KA_LATE of them.
KA_LATE = 3
KA_LATE_MASK = (1 << KA_LATE) - 1

# Per-device limits, checked after a datagram is authenticated (so nobody
# without the key can spend a device's budget) and before anything is
# stored; the buckets are in the device's row (docs/uplink.md, "Limits").
# An honest device sends a keep-alive every 180 s, a batch every hour or so,
# a streamed reading every few seconds for at most 15 minutes, and after an
# outage one batch per round trip: 2 datagrams a second with a burst of 120
# covers it. Readings: a meter reports at most one a second, and a device
# whose store (256 KB, ~91,000 readings) was full at the end of an outage
# sends them all at once.
MAX_READINGS = 2048  # per DATA; the firmware never puts more in a batch (uplink.py)
DGRAM_RATE, DGRAM_BURST = 2.0, 120.0
READING_RATE, READING_BURST = 2.0, 131072.0
# Refusals of stale HELLOs, a device: each is a transaction and a datagram to
# an address anyone can forge, and a captured HELLO replays for ever. A device
# that lost its numbers needs one or two; the bucket lives in memory (bounded:
# cleared past REFUSE_TABLE devices), so a replay beyond it costs no commit.
REFUSE_RATE, REFUSE_BURST, REFUSE_TABLE = 0.2, 4.0, 4096


def _bucket(tokens: float | None, at: float | None, now: float, rate: float, burst: float) -> float:
    if tokens is None or at is None:
        return burst
    return min(burst, tokens + max(0.0, now - at) * rate)


class Collector(Store):
    """Protocol logic over one SQLite database (collector_store.Store: tables,
    accounting, stats, CSV); `handle()` is the whole server minus sockets.
    It keeps no per-device state in memory but the keep-alive index: the
    replay window, route, boot nonce, challenge and rate buckets are read
    from the device's row for each datagram and committed back with it."""

    def __init__(
        self, db_path: str | Path, clock=time.time, push_window_s: float = PUSH_WINDOW_S, speed: float = 1.0
    ) -> None:
        super().__init__(db_path)
        self.clock = clock
        # Simulations run devices `speed` times faster than this clock: the
        # per-device rates scale with it (the bursts do not).
        self.speed = speed
        self.errors = 0
        self.db_failures = 0  # datagrams dropped on a database error (handle())
        # A command is pushed at once to where the device was last heard from
        # (the route, in its row: see push_pending); `sender(datagram, addr, via)`
        # is set by serve(), `via` being the socket the device reached, known
        # across a restart by its local address (vias: key -> socket).
        self.vias: dict[str, object] = {}
        self.push_window_s = push_window_s
        self.sender = None
        self.crash_hook = crash_hook()
        self._refusals: dict[int, tuple[float, float]] = {}  # device -> (tokens, at): stale-HELLO refusals

    # -- administration --------------------------------------------------------
    def add_device(self, device_id: int, key: bytes, key_id: int = 0) -> None:
        if len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {len(key)}")
        self._upsert_device(device_id, key, key_id)  # a new key starts the window afresh

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
    def via_key(self, via) -> str | None:
        """A socket's name that outlives the process: its local address."""
        if via is None:
            return None
        get = getattr(via, "get_extra_info", None)
        name = get("sockname") if get is not None else None
        key = f"{name[0]}:{name[1]}" if name else str(via)
        self.vias[key] = via  # one entry per socket, never per device
        return key

    def handle(self, data: bytes, addr, via=None) -> list[bytes]:
        """One datagram in; the replies to send back to `addr` out. Never raises on bad input.
        `via`: the socket it came in on (where a later push to this device leaves from)."""
        try:
            out = self._handle(bytes(data), addr, via)
        except db_errors() as e:
            # The database is away (PostgreSQL restarting: pg.py reconnects with
            # backoff and logs the outage): nothing was committed, nothing is
            # ACKed, the device sends it again. Logged at the 1st, 2nd, 4th... one.
            self.db_failures += 1
            k = (0, "db_unavailable")  # counted in `stats` once the database is back (flush_rejects)
            self._rejects[k] = self._rejects.get(k, 0) + 1
            if self.db_failures & (self.db_failures - 1) == 0:
                print(f"collector: database error #{self.db_failures}, datagram dropped: {e}", file=sys.stderr)
            return []
        except Exception as e:  # a bug must cost one datagram, never the server
            self.errors += 1
            print(f"collector: internal error on a datagram from {addr}: {e!r}", file=sys.stderr)
            try:
                self._reject(0, "internal_error")
            except db_errors():
                pass
            return []
        if out and self.crash_hook is not None:
            self.crash_hook("committed")  # test hook: committed, the replies not sent
        return out

    def _handle(self, data: bytes, addr, via) -> list[bytes]:
        try:
            d = wire.parse(data)
        except wire.WireError as e:
            self._reject(0, e.reason)
            return []
        if d.type in (wire.T_REPLY, wire.T_REFUSE):
            # collector->device type sent to us (reflection); its device id is
            # unauthenticated, so counted under 0: no row per claimed id
            self._reject(0, "bad_type")
            return []
        st = self.device_state(d.device_id)
        if st is None:
            self._reject(0, "unknown_device")
            return []
        kid, key, nonce = st.key_id, st.key, st.nonce
        win = wire.Window(st.top, st.bits, st.ka_bits)
        if d.type == wire.T_KEEPALIVE:
            # The one seq its low byte can mean above the window, one HMAC: a
            # guess costs no memory and fits this device only.
            seq = win.ka_seq(d.seq)
            if seq is None or not wire.keepalive_ok(key, d, seq):
                self._reject(d.device_id, "bad_keepalive")  # forged, or too far ahead: HELLO resyncs
                return []
            d.seq = seq
        else:
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
            if not (st.challenge and d.nonce == st.challenge):
                return self._refuse_stale(d, key, kid, win, st.challenge)
            # The device answered our challenge (it could not go above the
            # window): nothing but this exchange can be fresh, start afresh.
            win = wire.Window()
        # Limits (authentic datagrams only: nobody else can spend them).
        n_read = d.count if d.type == wire.T_DATA else 0
        if n_read > MAX_READINGS:
            self._reject(d.device_id, "too_many_readings")
            return []
        dg_tok = _bucket(st.dg_tokens, st.bucket_at, now, DGRAM_RATE * self.speed, DGRAM_BURST)
        rd_tok = _bucket(st.rd_tokens, st.bucket_at, now, READING_RATE * self.speed, READING_BURST)
        if dg_tok < 1 or rd_tok < n_read:
            self._reject(d.device_id, "rate_limited")
            return []
        # The route follows the newest authentic datagram only: a late or
        # re-delivered older one (from wherever) never moves it. Keep-alives are
        # all above the window: one is late if any of the KA_LATE seqs after it
        # was taken already (the device numbers its keep-alives one after another).
        route = (addr, self.via_key(via), now)
        if st.route is not None and (
            d.seq <= win.top or (d.type == wire.T_KEEPALIVE and (win.ka >> (d.seq - win.top)) & KA_LATE_MASK)
        ):
            route = st.route
        c = Commit(d.device_id, "data", len(data), now, (0, 0), route, (dg_tok - 1, rd_tok - n_read))
        want_reply = d.type == wire.T_HELLO
        if d.type == wire.T_DATA:
            try:
                rows = codec.decode3(d.payload) if d.version == 3 else codec.decode(d.payload)
                if len(rows) != d.count:
                    raise codec.CodecError(f"payload has {len(rows)} readings, header says {d.count}")
            except codec.CodecError:
                self._reject(d.device_id, "malformed")
                return []
            if d.flags & wire.DF_REALTIME:
                c.kind = "realtime"
                c.live = (d.epoch, d.first, rows)
            else:
                c.readings = (d.epoch, d.first, rows)
                want_reply = True
        elif d.type == wire.T_DONE:
            c.kind, c.done = "done", (d.cmd_id, d.status)
        elif d.type == wire.T_HEALTH:
            c.kind, c.health = "health", (d.seq, d.health)  # committed before the REPLY leaves
            want_reply = True  # the REPLY echoing its seq is the device's ACK
        elif d.type == wire.T_HELLO:
            c.kind, c.boot = "hello", (d.nonce, d.epoch, d.cmd_mark)
            nonce = d.nonce  # replies are bound to this boot from now on
        else:
            c.kind = "keepalive"
        if d.type == wire.T_KEEPALIVE:
            win.ka_accept(d.seq)  # never moves the window: a forged one cannot desynchronise
        else:
            win.accept(d.seq)
        c.window = (win.top, win.bits, win.ka)

        def respond(o: Outcome):
            if o.conflict:
                # Other values under these numbers: nothing stored, nothing ACKed;
                # the device numbers under a new epoch.
                ref = wire.build_refuse(
                    key, d.device_id, kid, self._next_seq(d.device_id), d.seq, wire.R_CONFLICT, 0, 0, nonce
                )
                return [("refuse", ref)], []
            cmds = o.pending
            if d.type == wire.T_DONE and self._in_flight(cmds):
                # The device has commands of an earlier reply in hand: their
                # DONEs are coming, and the next reply goes with the last of
                # them (or with the next keep-alive). Answering every DONE
                # with the pending list made every re-sent command a DONE and
                # every DONE a reply: a storm, with many pending.
                cmds = []
            if not (want_reply or cmds):
                return [], []
            ack = (d.first, d.count) if c.readings is not None else (0, 0)
            reply = wire.build_reply(key, d.device_id, kid, self._next_seq(d.device_id), d.seq, *ack, cmds, nonce=nonce)
            kind = "command" if cmds else "ack" if ack[1] else "health_ack" if c.health else "hello_reply"
            return [(kind, reply)], cmds

        return self.commit_datagram(c, respond)  # readings durable before the ACK leaves

    def _refuse_stale(self, d, key: bytes, kid: int, win: wire.Window, challenge: int) -> list[bytes]:
        """An authentic HELLO below the window: a device that lost its sequence numbers (or
        a replay, which cannot use the answer: it is tagged over the HELLO's nonce, and the
        device takes only what echoes its own recent seqs). Tell it the lowest seq we would
        take, and a challenge for when it cannot go that high: a HELLO carrying the
        challenge as its nonce restarts the window. The challenge stays until answered, so
        replays cannot move it. Never changes the window, route or boot."""
        now = self.clock()
        tokens, at = self._refusals.get(d.device_id, (None, None))
        tokens = _bucket(tokens, at, now, REFUSE_RATE * self.speed, REFUSE_BURST)
        if tokens < 1:
            self._reject(d.device_id, "stale_limited")  # batched: no transaction, nothing sent
            return []
        if len(self._refusals) >= REFUSE_TABLE:
            self._refusals.clear()
        self._refusals[d.device_id] = (tokens - 1, now)
        new = not challenge
        if new:
            challenge = secrets.randbits(32) or 1
        min_seq = min(win.latest() + 1, wire.SEQ_LIMIT - 1)

        def build() -> bytes:
            return wire.build_refuse(
                key, d.device_id, kid, self._next_seq(d.device_id), d.seq, wire.R_STALE, min_seq, challenge, d.nonce
            )

        ref = self.commit_refusal(d.device_id, len(d.raw), challenge, new, build)
        return [] if ref is None else [ref]  # None: another collector acted on the device meanwhile

    def push_pending(self) -> int:
        """Send each command that no reply has carried yet to its device now, to the
        address the device's last authentic datagram came from (its route, if within
        push_window_s), echoing that datagram's seq. Behind a NAT it arrives while
        the mapping lives; otherwise the reply to the next keep-alive carries it (as
        it carries every command until DONE). Returns the number of pushes."""
        if self.sender is None:
            return 0
        n = 0
        for dev in self._unsent_devices(self.clock() - self.push_window_s):
            st = self.device_state(dev)
            if st is None or st.route is None or st.top < 0 or self.clock() - st.route[2] > self.push_window_s:
                continue
            cmds = self._pending(dev)
            if not cmds:
                continue
            via = self.vias.get(st.route[1]) if st.route[1] is not None else None
            if via is None and st.route[1] is not None and self.vias:
                via = next(iter(self.vias.values()))  # restarted on other sockets: any will do

            def build(st=st, cmds=cmds, dev=dev) -> bytes:
                latest = wire.Window(st.top, st.bits, st.ka_bits).latest()  # the route's datagram
                return wire.build_reply(st.key, dev, st.key_id, self._next_seq(dev), latest, 0, 0, cmds, nonce=st.nonce)

            reply = self.commit_push(dev, cmds, build)
            if reply is None:
                continue  # another collector acted on the device meanwhile
            self.sender(reply, st.route[0], via)
            n += 1
        return n


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
    ap.add_argument(
        "--db",
        default="collector.sqlite",
        help="PATH or sqlite:PATH (SQLite), or postgresql://USER@HOST:PORT/DB (docs/fleet.md) (default: %(default)s)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="receive datagrams until interrupted")
    p.add_argument("--listen", type=parse_listen, action="append", help="HOST:PORT (repeatable)")
    p.add_argument("--stats-every", type=float, default=60, help="progress line every S seconds (0: never)")
    p.add_argument("--poll", type=float, default=1.0, help="look for commands queued by the CLI every S seconds")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="devices run this many times faster than real time (simulations): rate limits scale with it",
    )
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
    if a.cmd not in ("serve", "add-device") and not is_postgres(a.db) and not sqlite_path(a.db).is_file():
        # before: `ihd collector stats` made an empty collector.sqlite in
        # whatever folder it ran in, and reported nothing
        print(
            f"collector: no database {a.db}: give --db PATH (the file `serve` and `add-device` use;"
            " the simulator's is run/sim/collector.sqlite)",
            file=sys.stderr,
        )
        return 2
    try:
        col = open_collector(
            a.db, push_window_s=getattr(a, "push_window", PUSH_WINDOW_S), speed=getattr(a, "speed", 1.0)
        )
    except ValueError as e:  # PostgreSQL out of reach, or psycopg missing
        print(f"collector: {e}", file=sys.stderr)
        return 2
    except db_errors() as e:
        print(f"collector: {a.db} is not a collector database ({e})", file=sys.stderr)
        return 2
    try:
        if a.cmd == "serve":
            signal.signal(signal.SIGTERM, _stop)  # a stop, like ^C: the reject counters are written
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
        col.flush_rejects()
    return 0


def _stop(*_) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
