"""Uplink bytes and latency, side by side with their baselines, in one run.

    .venv/bin/python bench/uplink.py [--readings FILE.csv | --loadprofile SEED,SOLAR_W] [--speed 1000]
                                     [--no-realtime] [--no-cpu]

Readings: FILE.csv with header utc_s,demand_w (any interval; optional
delivered_wh,received_wh,flags columns, else the counters are integrated from
demand as a meter does), or by default a built-in realistic 24 h of 3-second
readings (appliances with their own cycles plus meter noise; see
docs/uplink.md). Prints one JSON object:
  codec_bits_per_reading      firmware encoder (MicroPython), payload bits only
  zlib9/zstd19_bits_per_reading  best of CSV text and packed 5 x 32-bit binary,
                              each compressed as one whole-day blob (details in
                              *_csv_* and *_binary_* keys)
  wire_bytes_per_day          the firmware uplink on the Unix port (accelerated
                              clock, real store) against ihd collector over
                              loopback: every datagram both ways (batches, ACKs,
                              HELLOs, keep-alives) plus 28 bytes of IPv4+UDP each
  http_baseline_bytes_per_day one HTTP/1.1 POST with a small JSON body per
                              reading on a keep-alive connection, measured with
                              aiohttp client and server, plus 3 TCP segments per
                              reading (request, response, ACK) of 52 bytes of
                              IPv4+TCP headers (timestamps option) each
  reduction_factor            http_baseline_bytes_per_day / wire_bytes_per_day
  uplink_cpu_ms_per_day       MicroPython CPU of the uplink's calls (notify, its
                              schedule, replies) over the day with a manual clock
                              (host_tests/uplink/cpu_day.py), against
  encode_once_cpu_ms_per_day  the codec encoding each reading once, same process;
                              uplink_cpu_vs_encode_once is their ratio (least
                              wall time of 3 runs each)
  keepalive_bytes_per_day     the keep-alives' share of wire_bytes_per_day
  wire_bytes_per_day_by_kind  where every byte of the day went, counted by the
                              collector per datagram kind (data, data_repeat =
                              a batch the collector already held, keepalive,
                              hello, done, health (HEALTH reports: at boot, on
                              a fault change, every 6 h), realtime; ack,
                              hello_reply, health_ack, command,
                              push), IPv4+UDP headers included
  realtime_*                  behind a NAT that forgets mappings after 60 s:
                              request -> first streamed reading (device s), and
                              each streamed reading's delay (real s, loopback)
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import random
import secrets
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "host_tests"))
sys.path.insert(0, str(ROOT / "host_tests" / "uplink"))
from harness import DEV, Net, fw_batches, realtime_trial, run_device  # noqa: E402

import mpy  # noqa: E402
from ihd.uplink import codec as uc  # noqa: E402

CPU_DAY = ROOT / "host_tests" / "uplink" / "cpu_day.py"

DATA_CAP = 1166  # firmware/uplink/datagram.py (wire version 2)
IP_UDP = 28
KA_LEN = 9  # a keep-alive: device id, seq byte, token (docs/wire-format.md)
TCP_SEGMENT_HEADERS = 20 + 32  # IPv4 + TCP with the timestamps option (Linux default)
F_DEFAULT = 1 | 2 | 4  # time valid, demand, summation (firmware/meter/reading.py)
F_RECEIVED = 8


def log(msg: str) -> None:
    print(f"bench/uplink: {msg}", file=sys.stderr, flush=True)


# -- readings ----------------------------------------------------------------------
def realistic_day(seed: int = 2026, start: int = 1_767_225_600, hours: int = 24, interval: int = 3):
    """Household power second by second: always-on base, fridge and freezer cycles,
    lights, TV, computer, kettle, oven and hob thermostats, washing machine and
    dishwasher (heater then motor), plus noise of 1.5 W + 0.4% of the load. The meter
    reports the demand of every `interval`-th second, and its delivered register is
    the exact integral of the power (whole Wh), as a meter's metrology does."""
    rng = random.Random(seed)
    events = []
    for h in (7.2, 8.1, 13.0, 16.5, 19.7, 22.3):  # kettle
        events.append((int(h * 3600 + rng.uniform(-600, 600)), rng.randint(150, 220), rng.randint(2600, 2900), "flat"))
    events += [
        (int(7.5 * 3600), 480, 1800, "flat"),  # toaster
        (10 * 3600, 1200, 2050, "flat"),  # washing machine heater
        (10 * 3600 + 1200, 3900, 280, "motor"),  # washing machine drum
        (21 * 3600, 1500, 1950, "flat"),  # dishwasher heater
        (21 * 3600 + 1500, 4200, 120, "motor"),
        (18 * 3600, 3000, 2100, "thermostat"),  # oven
        (int(18.2 * 3600), 1800, 1200, "thermostat"),  # hob
        (9 * 3600, 8 * 3600, 95, "pc"),  # home office
        (19 * 3600, 4 * 3600, 110, "flat"),  # TV
        (7 * 3600, 5400, 25, "pc"),  # chargers
    ]
    lights = [(6.8, 8.3, 120), (17.2, 23.6, 180), (19.5, 22.5, 90)]
    out = []
    energy_ws = 5_000_000 * 3600  # the meter's register, in watt-seconds
    for t in range(hours * 3600):
        hr = t / 3600
        w = 115 + 10 * math.sin(2 * math.pi * t / 86400)
        w += 95 if (t + 700) % 3000 < 1100 else 0  # fridge
        w += 80 if (t + 2100) % 4200 < 1500 else 0  # freezer
        w += sum(lw for a, b, lw in lights if a <= hr < b)
        for a, dur, ew, kind in events:
            if a <= t < a + dur:
                if kind == "flat":
                    w += ew
                elif kind == "motor":
                    w += ew * (0.6 + 0.4 * abs(math.sin(t / 40)))
                elif kind == "thermostat":
                    w += ew if (t - a) % 240 < 150 else 0
                else:
                    w += ew * (0.8 + 0.4 * rng.random() ** 4)
        w += rng.gauss(0, 1.5 + 0.004 * w)
        energy_ws += w
        if t % interval == 0:
            out.append((start + t, int(round(w)), int(energy_ws // 3600), 0, F_DEFAULT))
    return out


def loadprofile_day(spec: str) -> list[tuple[int, ...]]:
    """24 h of 3-second readings of tools/ihd/emulators/loadprofile.py's household SEED with SOLAR_W of
    rooftop PV (exporting around noon), on a June day, its registers integrated second
    by second as a meter does (from 4,000,000 Wh delivered and 1,200,000 Wh received)."""
    try:
        seed, solar = (int(x) for x in spec.split(","))
    except ValueError:
        raise SystemExit(f"--loadprofile {spec!r}: expected SEED,SOLAR_W (for example 3,4000)")
    from ihd.emulators.loadprofile import LoadProfile, Meter

    start = 1_767_225_600 + 170 * 86400
    m = Meter(LoadProfile(seed=seed, solar_w=solar), start)
    out = []
    for t in range(start, start + 86400, 3):
        m.advance_to(t)
        flags = F_DEFAULT | (F_RECEIVED if solar else 0)
        out.append((t, m.demand_w(), 4_000_000 + m.delivered_ws // 3600, 1_200_000 + m.received_ws // 3600, flags))
    return out


def load_csv(path: Path) -> list[tuple[int, ...]]:
    with open(path, newline="") as fh:
        rd = csv.reader(fh)
        header = [h.strip() for h in next(rd, [])]
        if header[:2] != ["utc_s", "demand_w"]:
            raise SystemExit(f"{path}: header must start with utc_s,demand_w (got {','.join(header)})")
        rows = []
        for n, row in enumerate(rd, start=2):
            try:
                rows.append(tuple(int(float(x)) for x in row[: len(header)]))
            except ValueError:
                raise SystemExit(f"{path}:{n}: not a number in {row}")
    if len(rows) < 2:
        raise SystemExit(f"{path}: need at least 2 readings")
    for i in range(1, len(rows)):
        if rows[i][0] <= rows[i - 1][0]:
            raise SystemExit(f"{path}: utc_s must increase (row {i + 2}: {rows[i][0]} after {rows[i - 1][0]})")
    return rows


def complete(rows) -> list[tuple[int, int, int, int, int]]:
    """Five-int readings: counters integrated from demand when the file has none."""
    if len(rows[0]) >= 5:
        return [tuple(r[:5]) for r in rows]
    export = any(r[1] < 0 for r in rows)
    flags = F_DEFAULT | (F_RECEIVED if export else 0)
    de, rc, fd, fr = 5_000_000, 0, 0, 0  # Ws not yet counted as a whole Wh
    out = [(rows[0][0], rows[0][1], de, rc, flags)]
    for prev, cur in zip(rows, rows[1:], strict=False):
        e = prev[1] * (cur[0] - prev[0])  # demand held until the next report
        if e > 0:
            fd += e
            de += fd // 3600
            fd %= 3600
        else:
            fr -= e
            rc += fr // 3600
            fr %= 3600
        out.append((cur[0], cur[1], de, rc, flags))
    return out


# -- codec ---------------------------------------------------------------------------
def codec_bits(rows, tmp: Path) -> tuple[float, int]:
    total = i = batches = 0
    for n, payload in fw_batches(rows, DATA_CAP, state_dir=tmp / "codec", timeout=900):
        if uc.decode(payload) != rows[i : i + n]:
            raise SystemExit(f"codec round trip failed at reading {i}")
        if uc.encode(rows[i:], DATA_CAP) != (payload, n):
            raise SystemExit(f"firmware and host encoders differ at reading {i}")
        total += len(payload)
        i += n
        batches += 1
    if i != len(rows):
        raise SystemExit(f"firmware encoded {i} of {len(rows)} readings")
    return 8 * total / len(rows), batches


def general_purpose(rows) -> dict:
    n = len(rows)
    text = (
        "utc_s,demand_w,delivered_wh,received_wh,flags\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    ).encode()
    binary = b"".join(struct.pack("<IiIIi", *r) for r in rows)
    out = {}
    for name, blob in (("csv", text), ("binary", binary)):
        out[f"zlib9_{name}_bits_per_reading"] = round(8 * len(zlib.compress(blob, 9)) / n, 2)
        out[f"zstd19_{name}_bits_per_reading"] = round(
            8 * len(zstandard.ZstdCompressor(level=19).compress(blob)) / n, 2
        )
    out["zlib9_bits_per_reading"] = min(out["zlib9_csv_bits_per_reading"], out["zlib9_binary_bits_per_reading"])
    out["zstd19_bits_per_reading"] = min(out["zstd19_csv_bits_per_reading"], out["zstd19_binary_bits_per_reading"])
    return out


def uplink_cpu(rows, tmp: Path, runs: int = 3) -> dict:
    """CPU of the uplink's own work for these readings (host_tests/uplink/cpu_day.py)
    against the codec encoding each reading once, in the same MicroPython process.
    Times are wall clock on a shared machine: the least of `runs` fresh processes."""
    f = tmp / "cpu.csv"
    f.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    us: dict[str, int] = {}
    for i in range(runs):
        r = mpy.run(path=CPU_DAY, args=(f,), heap="256k", state_dir=tmp / f"cpu{i}", timeout=900)
        for line in r.stdout.splitlines():
            if line.startswith("cpu "):
                _, name, t, _uploaded, _n = line.split()
                us[name] = min(int(t), us.get(name, 1 << 62))
    per_day = 86400 / max(1, rows[-1][0] - rows[0][0])
    return {
        "uplink_cpu_ms_per_day": round(us["uplink"] / 1000 * per_day),
        "encode_once_cpu_ms_per_day": round(us["encode_once"] / 1000 * per_day),
        "uplink_cpu_vs_encode_once": round(us["uplink"] / us["encode_once"], 2),
    }


# -- HTTP baseline -----------------------------------------------------------------
async def _http_bytes(rows, n: int) -> tuple[float, float]:
    from aiohttp import ClientSession, TCPConnector, web

    counts = {"up": 0, "down": 0}

    async def pipe(r, w, key):
        while data := await r.read(65536):
            counts[key] += len(data)
            w.write(data)
            await w.drain()
        w.close()

    async def handle(req):
        await req.read()
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/readings", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def relay(cr, cw):  # counts the bytes each way, as a capture would
        sr, sw = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(cr, sw, "up"), pipe(sr, cw, "down"), return_exceptions=True)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    pport = proxy.sockets[0].getsockname()[1]
    token = secrets.token_urlsafe(32)  # a per-device bearer token of 43 characters
    async with ClientSession(connector=TCPConnector(limit=1)) as s:
        for i in range(n):
            u, d, de, rc, fl = rows[i % len(rows)]
            body = {"device_id": DEV, "utc_s": u, "demand_w": d, "delivered_wh": de, "received_wh": rc, "flags": fl}
            async with s.post(
                f"http://127.0.0.1:{pport}/v1/readings", json=body, headers={"Authorization": "Bearer " + token}
            ) as r:
                await r.read()
    proxy.close()
    await runner.cleanup()
    return counts["up"] / n, counts["down"] / n


# -- the run ---------------------------------------------------------------------------
def wire_run(rows, tmp: Path, speed: int) -> dict:
    csv_path = tmp / "readings.csv"
    with open(csv_path, "w") as fh:
        fh.write("utc_s,demand_w,delivered_wh,received_wh,flags\n")
        fh.writelines(",".join(map(str, r)) + "\n" for r in rows)
    span = rows[-1][0] - rows[0][0]
    net = Net(tmp / "wire.db")
    try:
        env = {
            "IHD_CLOCK": f"utc={rows[0][0] - 5},speed={speed}",
            "UPL_CSV": csv_path,
            "UPL_RUN_S": span + 10,
            "UPL_DRAIN": 1,
            "UPL_EPS": net.endpoints(),
        }
        t = time.monotonic()
        status, _ = run_device(tmp / "dev", env, timeout=span / speed * 3 + 600)
        real_s = time.monotonic() - t
        stats = net.call(net.col.stats)
        got = net.readings()
    finally:
        net.stop()
    dev = stats["devices"][DEV]
    if len(got) != len(rows) or [g[1:] for g in got] != [tuple(r) for r in rows]:
        raise SystemExit(f"collector holds {len(got)} readings, {len(rows)} were sent, or values differ")
    return {"span": span, "status": status, "dev": dev, "real_s": real_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--readings", type=Path, help="CSV with header utc_s,demand_w (default: built-in 24 h)")
    src.add_argument("--loadprofile", metavar="SEED,SOLAR_W", help="a day of ihd.emulators.loadprofile (e.g. 3,4000)")
    ap.add_argument("--speed", type=int, default=1000, help="device clock acceleration for the wire run")
    ap.add_argument("--http-samples", type=int, default=300)
    ap.add_argument("--no-realtime", action="store_true", help="skip the real-time latency trial")
    ap.add_argument("--no-cpu", action="store_true", help="skip the uplink CPU figures (3 MicroPython runs)")
    a = ap.parse_args(argv)
    if a.loadprofile:
        rows = loadprofile_day(a.loadprofile)
        source = f"tools/ihd/emulators/loadprofile.py day, seed,solar_w {a.loadprofile}"
    else:
        rows = complete(load_csv(a.readings) if a.readings else realistic_day())
        source = str(a.readings) if a.readings else "built-in 24 h of 3 s readings"
    n = len(rows)
    out: dict = {"readings": n, "source": source}
    with tempfile.TemporaryDirectory(prefix="bench-uplink-") as td:
        tmp = Path(td)
        log(f"{n} readings; codec on MicroPython")
        bits, batches = codec_bits(rows, tmp)
        out["codec_bits_per_reading"] = round(bits, 2)
        out.update(general_purpose(rows))
        if not a.no_cpu:
            log("uplink CPU on MicroPython (manual clock, stand-in collector)")
            out.update(uplink_cpu(rows, tmp))
        out["codec_vs_best_general_purpose"] = round(
            min(out["zlib9_bits_per_reading"], out["zstd19_bits_per_reading"]) / bits, 2
        )
        log(f"uplink over loopback at {a.speed}x (about {(rows[-1][0] - rows[0][0]) / a.speed:.0f} s)")
        w = wire_run(rows, tmp, a.speed)
        per_day = 86400 / w["span"]
        dev, st = w["dev"], w["status"]
        wire_total = dev["wire_bytes_in"] + dev["wire_bytes_out"]
        out["wire_bytes_per_day"] = round(wire_total * per_day)
        out["wire_bytes_up_per_day"] = round(dev["wire_bytes_in"] * per_day)
        out["wire_bytes_down_per_day"] = round(dev["wire_bytes_out"] * per_day)
        out["datagrams_per_day"] = round((dev["datagrams_in"] + dev["datagrams_out"]) * per_day)
        out["keepalive_bytes_per_day"] = round(st["keepalives"] * (KA_LEN + IP_UDP) * per_day)
        out["wire_bytes_per_day_by_kind"] = {
            k: round(v["wire_bytes"] * per_day)
            for k, v in sorted(dev["traffic"].items(), key=lambda kv: -kv[1]["bytes"])
        }
        out["datagrams_per_day_by_kind"] = {k: round(v["datagrams"] * per_day) for k, v in dev["traffic"].items()}
        out["batches"] = st["batches_acked"]
        out["retransmits"] = st["retransmits"]
        out["keepalive_interval_s"] = st.get("keepalive_s")
        out["readings_at_collector_exactly_once"] = True
        log("HTTP/1.1 baseline (aiohttp client and server)")
        up, down = asyncio.run(_http_bytes(rows, a.http_samples))
        http_per_reading = up + down + 3 * TCP_SEGMENT_HEADERS
        out["http_bytes_per_reading"] = round(http_per_reading, 1)
        out["http_baseline_bytes_per_day"] = round(http_per_reading * n * per_day)
        out["reduction_factor"] = round(out["http_baseline_bytes_per_day"] / out["wire_bytes_per_day"], 1)
        out["reduction_factor_without_keepalives"] = round(
            out["http_baseline_bytes_per_day"] / (out["wire_bytes_per_day"] - out["keepalive_bytes_per_day"]), 1
        )
        if not a.no_realtime:
            log("real-time trial behind a 60 s NAT (about 60 s)")
            r = realtime_trial(tmp, speed=100, run_s=5400)
            lat = sorted(r["latencies"])
            dl = sorted(r["delays"])
            out["realtime_requests"] = len(lat)
            out["realtime_first_reading_p95_s"] = round(lat[int(0.95 * (len(lat) - 1))], 1)
            out["realtime_first_reading_max_s"] = round(lat[-1], 1)
            out["realtime_streamed_readings"] = len(dl)
            out["realtime_reading_delay_p95_s"] = round(dl[int(0.95 * (len(dl) - 1))], 4)
            out["realtime_reading_delay_max_s"] = round(dl[-1], 4)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.TimeoutExpired as e:
        print(f"bench/uplink: the device did not finish in time ({e.timeout:.0f} s)", file=sys.stderr)
        sys.exit(1)
