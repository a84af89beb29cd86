# HAL, ESP32 implementation: the real machine, esp32 and network modules.
#
# Same names and behaviour as hal/unix.py; see hal/__init__.py for the
# interface. Pin numbers and bus settings come from the board module.
import time

import machine
import network
from esp32 import Partition

RESET_EXIT = 0  # unused on the device; kept so both ports export it

# time.time() counts from 2000-01-01 on ports built without the 1970 epoch.
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
_VALID_AFTER = 1704067200  # 2024-01-01: an RTC before this was never set


def partition(label):
    found = Partition.find(Partition.TYPE_DATA, label=label)
    if not found:
        raise OSError(2)
    return found[0]


def running_partition():
    return Partition(Partition.RUNNING)  # type: ignore[arg-type]  # stub says str; int ids are valid


def rolled_back():
    # The bootloader marks the image it abandoned ABORTED; MicroPython cannot
    # read otadata states, so the app records a pending update itself and
    # compares it with the running slot after boot (see ota/).
    return False


class Clock:
    speed = 1

    def __init__(self):
        self._rtc = machine.RTC()

    def ticks_ms(self):
        return time.ticks_ms()

    def utc(self):
        return int(time.time()) + _EPOCH

    def valid(self):
        return self.utc() >= _VALID_AFTER

    def set_utc(self, utc):
        t = time.gmtime(utc - _EPOCH)
        self._rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def real_ms(self, ms):
        return ms


clock = Clock()


class Uart:
    # cfg: {"id": 1, "baud": 115200, "tx": 17, "rx": 18, "rxbuf": 2048}
    def __init__(self, cfg):
        self.baud = cfg.get("baud", 115200)
        self.stream = machine.UART(
            cfg["id"],
            baudrate=self.baud,
            tx=cfg["tx"],
            rx=cfg["rx"],
            rxbuf=cfg.get("rxbuf", 2048),
            timeout=0,
        )

    def write(self, buf):
        return self.stream.write(buf)

    def readinto(self, buf):
        return self.stream.readinto(buf)

    def close(self):
        self.stream.deinit()


def set_bus_sink(fn):
    raise OSError("no bus sink on real hardware")


class Pin(machine.Pin):
    pass


class Spi:
    # cfg: {"id": 1, "baud": 4000000, "sck": 12, "mosi": 11}
    def __init__(self, cfg):
        self._spi = machine.SPI(
            cfg["id"],
            baudrate=cfg.get("baud", 4_000_000),
            sck=machine.Pin(cfg["sck"]),
            mosi=machine.Pin(cfg["mosi"]),
        )

    def write(self, buf):
        self._spi.write(buf)


class Wifi:
    def __init__(self):
        self._wlan = network.WLAN(network.WLAN.IF_STA)
        self.ssid = None

    def connect(self, ssid, key):
        self.ssid = ssid
        self._wlan.active(True)
        if not self._wlan.isconnected():
            self._wlan.connect(ssid, key)

    def isconnected(self):
        return self._wlan.isconnected()

    def rssi(self):
        return self._wlan.status("rssi") if self._wlan.isconnected() else None


wifi = Wifi()

_CAUSES = {
    machine.PWRON_RESET: "power-on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep-sleep",
    machine.SOFT_RESET: "soft",
}


_cause = [None]  # type: list  # the cause, read once per boot


def reset_cause():
    # machine.reset() is esp_restart(), which the chip reports as HARD_RESET
    # whatever the firmware meant ("memory", "config", ...): reset() leaves its
    # cause in RTC memory (kept over resets, cleared by power-on), read once
    # here. Only a HARD_RESET takes it: after a watchdog or power-on reset a
    # note is stale.
    if _cause[0] is None:
        rtc = machine.RTC()
        note = rtc.memory()
        cause = _CAUSES.get(machine.reset_cause(), "unknown")
        if note:
            rtc.memory(b"")
            if cause == "hard":
                cause = note.decode()
        _cause[0] = cause
    return _cause[0]


def reset(cause="soft"):
    machine.RTC().memory(cause.encode())
    machine.reset()


class Watchdog:
    def __init__(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()
