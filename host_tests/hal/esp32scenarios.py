"""Scenarios that drive the real firmware/hal/esp32.py on mp32 over the ESP32
port emulation (tools/ihd/mp32/esp32port), each a plain function of a `Device`.

test_esp32_hal.py runs each scenario as a test; test_esp32_hal_coverage.py
runs them all again against a copy of hal/esp32.py instrumented per statement
and fails on any statement no scenario executed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.mp32 import runtime as mpruntime  # noqa: E402

BOARD = ROOT / "boards" / "esp32s3_eink29"
PORT_EMU = ROOT / "tools" / "ihd" / "mp32" / "esp32port"
EPOCH_2000 = 946684800
UTC = 1750000000  # 2025-06-15 15:06:40


class Device:
    """One emulated device: a state directory (flash, RTC, reset reason) kept
    across runs, so each run() is a boot of the same device."""

    def __init__(self, state: Path, first_path: Path | None = None, extra_env: dict | None = None):
        self.state = state
        self.first_path = first_path  # ahead of .frozen (coverage: instrumented hal)
        self.extra_env = dict(extra_env or {})

    def env(self, env: dict | None = None) -> dict:
        e = dict(os.environ)
        for k in ("IHD_CLOCK", "IHD_UART", "IHD_FLASH_CUT", "IHD_FLASH_TORN", "IHD_PANEL_REC", "IHD_WIFI"):
            e.pop(k, None)
        parts = [".frozen", str(PORT_EMU), str(BOARD)]
        if self.first_path:
            parts.insert(0, str(self.first_path))
        e["MICROPYPATH"] = ":".join(parts)
        e["IHD_STATE"] = str(self.state)
        e.update(self.extra_env)
        e.update({k: str(v) for k, v in (env or {}).items()})
        return e

    def run(self, code: str, env: dict | None = None, expect: int = 0, heap: str = "256k", timeout: float = 60):
        """Boot, run `code`; returns (stdout lines, stderr). `expect`: exit status
        (0; 75 for an emulated reset; None: any)."""
        script = self.state.parent / "snippet.py"
        script.write_text(code)
        cmd = [str(mpruntime.binary("mp32")), "-X", f"heapsize={heap}", str(script)]
        p = subprocess.run(cmd, env=self.env(env), capture_output=True, timeout=timeout, cwd=self.state.parent)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if expect is not None and p.returncode != expect:
            msg = f"exit {p.returncode}, expected {expect}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err}"
            raise AssertionError(msg)
        return out.split("\n")[:-1] if out.endswith("\n") else out.split("\n"), err


class EchoPeer:
    """A TCP peer for the emulated UART: echoes what it receives, and closes
    its end after `close_after` bytes when given."""

    def __init__(self, close_after: int | None = None):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.seen = b""
        self.close_after = close_after
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        try:
            c, _ = self.srv.accept()
        except OSError:  # closed before the device connected
            return
        with c:
            while True:
                try:
                    d = c.recv(256)
                except OSError:
                    return
                if not d:
                    return
                self.seen += d
                c.sendall(d)
                if self.close_after is not None and len(self.seen) >= self.close_after:
                    return

    def close(self):
        self.srv.close()


# -- scenarios ----------------------------------------------------------------------
def clock_invalid_until_set_and_kept_over_resets(dev: Device):
    # Power-on: the RTC counts from 2000-01-01, so the clock is invalid.
    clk = {"IHD_CLOCK": f"utc={UTC},invalid"}
    out, _ = dev.run(
        "import hal, time\n"
        "print(hal.clock.valid(), hal.clock.utc(), time.gmtime(0)[0], hal.reset_cause())\n"
        f"hal.clock.set_utc({UTC})\n"
        "print(hal.clock.valid(), hal.clock.utc(), time.localtime()[:6])\n"
        "hal.reset()\n",
        env=clk,
        expect=75,
    )
    valid, utc, epoch, cause = out[0].split()
    assert (valid, epoch, cause) == ("False", "2000", "power-on")
    assert EPOCH_2000 <= int(utc) < EPOCH_2000 + 5
    assert out[1] == f"True {UTC} (2025, 6, 15, 15, 6, 40)"
    # A reset keeps the RTC running (and says why it happened) ...
    out, _ = dev.run("import hal\nprint(hal.clock.valid(), hal.clock.utc(), hal.reset_cause())\n", env=clk)
    valid, utc, cause = out[0].split()
    assert valid == "True" and UTC <= int(utc) < UTC + 5 and cause == "soft"
    # ... a power cut (that run ended without a reset) does not.
    out, _ = dev.run("import hal\nprint(hal.clock.valid(), hal.reset_cause())\n", env=clk)
    assert out == ["False power-on"]
    # Without `invalid` the RTC starts at utc=S, as if set before this boot.
    out, _ = dev.run("import hal\nprint(hal.clock.valid(), hal.clock.utc())\n", env={"IHD_CLOCK": f"utc={UTC}"})
    assert out[0].split()[0] == "True" and UTC <= int(out[0].split()[1]) < UTC + 3


SPEED_CODE = """
import hal, time, asyncio
t = hal.clock.ticks_ms()
us = time.ticks_us()
u = hal.clock.utc()
time.sleep_ms(hal.clock.real_ms(20000))
async def wait():
    await asyncio.sleep_ms(20000)
asyncio.run(wait())
print(time.ticks_diff(hal.clock.ticks_ms(), t), time.ticks_diff(time.ticks_us(), us) // 1000, hal.clock.utc() - u)
"""


def clock_runs_at_speed(dev: Device):
    # 40 device seconds (a sleep and an asyncio wait, i.e. a select.poll
    # timeout) at speed 200: 0.2 s of real time.
    t0 = time.monotonic()
    out, _ = dev.run(SPEED_CODE, env={"IHD_CLOCK": f"utc={UTC},speed=200"})
    real = time.monotonic() - t0
    ms, us_ms, secs = map(int, out[0].split())
    assert 40000 <= ms < 41000 and 40000 <= us_ms < 41000 and secs in (40, 41)
    assert real < 10  # at speed 1 this takes 40 s


UART_CODE = """
import hal, board, asyncio, time
u = hal.Uart(board.METER_UART)
buf = bytearray(16)
print(u.readinto(buf))
u.write(b"ping\\x7e")
async def rd():
    r = asyncio.StreamReader(u.stream)
    got = b""
    while len(got) < 5:
        got += await r.read(16)
    return got
print(asyncio.run(asyncio.wait_for_ms(rd(), 5000)))
u.write(b"bye")
try:
    for i in range(200):
        u.readinto(buf)
        time.sleep_ms(10)
    print("no error")
except OSError as e:
    print("closed", e.args[0])
u.close()
"""


def uart_round_trip_over_tcp(dev: Device):
    peer = EchoPeer(close_after=8)
    try:
        out, _ = dev.run(UART_CODE, env={"IHD_UART": f"tcp:127.0.0.1:{peer.port}"})
    finally:
        peer.close()
    # timeout=0: nothing there reads as None (EAGAIN), as machine_uart.c
    assert out == ["None", "b'ping~'", "closed 5"]
    assert peer.seen == b"ping~bye"


PART_CODE = """
import hal, esp32
from hal.norflash import FlashError
p = hal.partition("store")
print(p.ioctl(5, 0), p.ioctl(4, 0), p.ioctl(1, 0), p.ioctl(99, 0))
f = esp32.flash()
s0 = p.info()[2] // 4096
e0 = f.erase_count(s0)
print(p.ioctl(6, 0), f.erase_count(s0) - e0)
p.writeblocks(0, b"\\x0f" * 16, 0)        # with an offset: program only
p.writeblocks(0, b"\\x07" * 16, 0)        # clearing more bits is fine
print(f.erase_count(s0) - e0)
try:
    p.writeblocks(0, b"\\xff" * 16, 0)    # 0 -> 1 without an erase
except FlashError:
    print("nor refused")
b = bytearray(16)
p.readblocks(0, b)
print(bytes(b) == b"\\x07" * 16)
p.writeblocks(0, bytes(range(256)) * 16)  # no offset: erases the block first
p.readblocks(0, b, 16)
print(bytes(b) == bytes(range(16, 32)), f.erase_count(s0) - e0)
for call in (
    lambda: p.writeblocks(0, b"abc"),      # erase range not whole sectors
    lambda: p.readblocks(64, b),           # starts at the end: length too long
    lambda: p.readblocks(65, b),           # starts past the end
    lambda: p.writeblocks(63, b, 4090),    # crosses the end
    lambda: p.ioctl(6, 64),
    lambda: p.ioctl(6, 65),
):
    try:
        call()
        print("no error")
    except OSError as e:
        print(e.args)
try:
    hal.partition("nope")
except OSError as e:
    print("missing", e.args[0])
"""


def partition_rules(dev: Device):
    out, _ = dev.run(PART_CODE)
    assert out == [
        "4096 64 0 None",
        "0 1",
        "1",
        "nor refused",
        "True",
        "True 2",
        "(-260, 'ESP_ERR_INVALID_SIZE')",
        "(-260, 'ESP_ERR_INVALID_SIZE')",
        "(-258, 'ESP_ERR_INVALID_ARG')",
        "(-260, 'ESP_ERR_INVALID_SIZE')",
        "(-260, 'ESP_ERR_INVALID_SIZE')",
        "(-258, 'ESP_ERR_INVALID_ARG')",
        "missing 2",
    ]
    # A power cut during the program after the erase: the block stays erased.
    dev.run(
        "import hal\nhal.partition('store').writeblocks(2, b'\\x00' * 4096)\n",
        env={"IHD_FLASH_CUT": "1"},
        expect=1,
    )
    out, _ = dev.run("import hal\nb = bytearray(4096)\nhal.partition('store').readblocks(2, b)\nprint(set(b))\n")
    assert out == ["{255}"]


OTA_WRITE = """
import hal
run = hal.running_partition()
nxt = run.get_next_update()
print(run.info()[4], nxt.info()[4], hal.rolled_back(), hal.reset_cause())
try:
    nxt.set_boot()                      # an erased slot is no app image
except OSError as e:
    print(e.args)
img = bytearray(4096)
img[0] = 0xE9
nxt.writeblocks(0, img)
nxt.set_boot()
hal.reset("ota")
"""

OTA_BOOT = """
import hal
print(hal.running_partition().info()[4], hal.reset_cause())
if %r:
    hal.Partition.mark_app_valid_cancel_rollback()
hal.reset()
"""


def ota_set_boot_and_rollback(dev: Device):
    out, _ = dev.run(OTA_WRITE, expect=75)
    assert out == ["ota_0 ota_1 False power-on", "(-5379, 'ESP_ERR_OTA_VALIDATE_FAILED')"]
    # The new image boots once; never confirmed, the bootloader rolls back.
    out, _ = dev.run(OTA_BOOT % False, expect=75)
    assert out == ["ota_1 ota"]
    out, _ = dev.run(OTA_BOOT % False, expect=75)
    assert out == ["ota_0 soft"]
    # Confirmed, it stays.
    out, _ = dev.run(OTA_WRITE, expect=75)
    assert out[0] == "ota_0 ota_1 False soft"
    out, _ = dev.run(OTA_BOOT % True, expect=75)
    assert out == ["ota_1 ota"]
    out, _ = dev.run(OTA_BOOT % False, expect=75)
    assert out == ["ota_1 soft"]


def watchdog_resets_a_hung_firmware(dev: Device):
    clk = {"IHD_CLOCK": f"utc={UTC},speed=10"}
    # Fed: 3 device seconds at speed 10 with a 1 s watchdog, no reset.
    out, _ = dev.run(
        "import hal, time\nw = hal.Watchdog(1000)\n"
        "for i in range(30):\n    time.sleep_ms(100)\n    w.feed()\nprint('alive')\n",
        env=clk,
    )
    assert out == ["alive"]
    _, err = dev.run("import hal\nw = hal.Watchdog(1000)\nwhile True:\n    pass\n", env=clk, expect=-9, timeout=30)
    assert "watchdog expired" in err
    out, _ = dev.run("import hal\nprint(hal.reset_cause())\n")
    assert out == ["watchdog"]


WIFI_CODE = """
import hal, network
print(hal.wifi.isconnected(), hal.wifi.rssi())
hal.wifi.connect("sim-wifi", "key")
print(hal.wifi.isconnected(), hal.wifi.rssi(), hal.wifi.ssid)
network.ap(False)                       # the access point goes away
print(hal.wifi.isconnected(), hal.wifi.rssi())
network.ap(True, -70)                   # back: the station reassociates
hal.wifi.connect("sim-wifi", "key")
print(hal.wifi.isconnected(), hal.wifi.rssi())
"""


def wifi_station(dev: Device):
    out, _ = dev.run(WIFI_CODE)
    assert out == ["False None", "True -55 sim-wifi", "False None", "True -70"]
    code = "import hal\nhal.wifi.connect('x', 'y')\nprint(hal.wifi.isconnected())\n"
    out, _ = dev.run(code, env={"IHD_WIFI": "down"})
    assert out == ["False"]


BUS_CODE = """
import hal, board
try:
    hal.set_bus_sink(print)
except OSError:
    print("no sink on hardware")
dc = hal.Pin(board.PANEL_PINS["dc"], hal.Pin.OUT, value=0)
spi = hal.Spi(board.PANEL_SPI)
dc(1)
spi.write(b"\\x12\\x34")
from display import open_panel
panel = open_panel()
print(type(panel).__name__)
"""


def panel_bus_is_recorded(dev: Device):
    rec = dev.state.parent / "panel.rec"
    out, _ = dev.run(BUS_CODE, env={"IHD_PANEL_REC": rec})
    assert out == ["no sink on hardware", "SSD1680"]
    data = rec.read_bytes()
    assert data.startswith(b"P\x09\x00P\x09\x01S\x02\x00\x00\x00\x12\x34")
    assert b"P\x0a\x01" in data  # open_panel: CS high


SCENARIOS = [
    clock_invalid_until_set_and_kept_over_resets,
    clock_runs_at_speed,
    uart_round_trip_over_tcp,
    partition_rules,
    ota_set_boot_and_rollback,
    watchdog_resets_a_hung_firmware,
    wifi_station,
    panel_bus_is_recorded,
]
