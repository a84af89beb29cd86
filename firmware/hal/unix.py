# HAL, Unix-port implementation: emulated hardware for tests and simulation.
#
# Same names and behaviour as hal/esp32.py; see hal/__init__.py for the
# interface. Emulation details:
#   * UART: a TCP connection to a host process (the co-processor emulator)
#     or a pty device path; optionally paced at the configured baud rate.
#   * SPI and pins: every pin change and SPI write is passed to a sink, in
#     order, so a panel emulator (or a test) sees the exact command/data
#     stream. Input pins read a level from a callable.
#   * flash: hal/norflash.py (NOR semantics, wear counts, power cuts) with
#     partitions and an emulated bootloader from hal/unix_partition.py.
#   * clock: host UTC, or a virtual clock started at any UTC second, possibly
#     invalid until set, and accelerated by a speed factor.
#   * reset: exits the process with RESET_EXIT after recording the cause in
#     the state directory; the launcher starts the firmware again.
#   * watchdog: a thread that kills the process when the firmware stops
#     feeding it, leaving "watchdog" as the next reset cause.
import os
import select
import socket
import sys
import time

import board
from hal import norflash, unix_partition
from hal.unix_partition import Partition

RESET_EXIT = 75  # exit status that asks the launcher for a restart

_state = {"dir": None, "flash": None}


def state_dir():
    d = _state["dir"]
    if d is None:
        d = os.getenv("IHD_STATE") or "run/state"
        _mkdirs(d)
        _state["dir"] = d
    return d


def set_state_dir(d):
    _mkdirs(d)
    _state["dir"] = d
    _state["flash"] = None


def _mkdirs(d):
    p = ""
    for part in d.split("/"):
        p = p + part + "/" if p or part else "/"
        if part:
            try:
                os.mkdir(p)
            except OSError:
                pass


def _env_int(name):
    v = os.getenv(name)
    return None if v is None or v == "" else int(v)


# -- flash --------------------------------------------------------------------
def flash():
    # The emulated flash chip, opened once per boot. IHD_FLASH_CUT=N and
    # IHD_FLASH_TORN=K inject a power cut after N program/erase operations.
    f = _state["flash"]
    if f is None:
        f = norflash.NorFlash(
            state_dir() + "/flash.bin",
            board.FLASH_SIZE,
            cut_after=_env_int("IHD_FLASH_CUT"),
            torn=_env_int("IHD_FLASH_TORN"),
        )
        unix_partition.attach(f, board.PARTITIONS)
        _state["flash"] = f
    return f


def attach_flash(f):
    # Tests: use this NorFlash (e.g. one with a power cut armed).
    unix_partition.attach(f, board.PARTITIONS)
    _state["flash"] = f


def partition(label):
    flash()
    return Partition(label)


def running_partition():
    flash()
    return Partition(Partition.RUNNING)


def rolled_back():
    flash()
    if "running" not in unix_partition._boot:
        unix_partition.boot()
    return unix_partition.rolled_back()


# -- clock --------------------------------------------------------------------
class Clock:
    # UTC wall time in whole seconds plus monotonic ticks in ms. `speed` > 1
    # makes both run faster than real time (simulation). A clock that has
    # never been set reports valid() False, as an ESP32 after power-on.
    def __init__(self, utc=None, speed=1, valid=True):
        self.speed = speed
        self._t0 = time.ticks_ms()
        self._utc0_ms = int(time.time() * 1000) if utc is None else utc * 1000
        self._valid = valid

    def _elapsed_ms(self):
        return time.ticks_diff(time.ticks_ms(), self._t0) * self.speed

    def ticks_ms(self):
        return time.ticks_add(self._t0, self._elapsed_ms())

    def utc(self):
        return (self._utc0_ms + self._elapsed_ms()) // 1000

    def valid(self):
        return self._valid

    def set_utc(self, utc):
        self._utc0_ms = utc * 1000 - self._elapsed_ms()
        self._valid = True

    def real_ms(self, ms):
        # How long to really wait for `ms` of device time.
        return ms // self.speed if self.speed > 1 else ms


def _default_clock():
    # IHD_CLOCK="utc=1700000000,speed=1000,invalid" for simulations.
    spec = os.getenv("IHD_CLOCK") or ""
    kw = {}
    for item in spec.split(","):
        if item == "invalid":
            kw["valid"] = False
        elif "=" in item:
            k, v = item.split("=")
            kw[k] = int(v)
    return Clock(**kw)


clock = _default_clock()


# -- UART ---------------------------------------------------------------------
class Uart:
    # cfg: {"connect": "tcp:HOST:PORT"} or {"device": "/dev/pts/N"},
    # "baud": 115200, "pace": bool. `stream` is pollable for asyncio.
    def __init__(self, cfg):
        self.baud = cfg.get("baud", 115200)
        self.pace = cfg.get("pace", False)
        target = os.getenv("IHD_UART") or cfg.get("connect") or cfg.get("device")
        self._file = not target.startswith("tcp:")
        self._one = bytearray(1)
        if target.startswith("tcp:"):
            _, host, port = target.split(":")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(socket.getaddrinfo(host, int(port))[0][-1])
            # IPPROTO_TCP, TCP_NODELAY: a UART sends each byte at once; with
            # Nagle a frame written right after another (an ASH ACK, then
            # the next command) waits for the peer's delayed ACK (40 ms).
            s.setsockopt(6, 1, 1)
            s.setblocking(False)
        else:
            s = open(target, "r+b")
        self.stream = s
        # A pty is a plain file whose reads block: poll first, as the
        # device's UART read with timeout=0 never blocks either.
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)

    def write(self, buf):
        s = self.stream
        mv = memoryview(buf)
        done = 0
        while done < len(mv):
            n = s.write(mv[done:])
            if n:
                done += n
        if self.pace:
            # 10 bit times a byte (8N1); real_ms() only scales, so it works on us too
            time.sleep_us(clock.real_ms(len(buf) * 10_000_000 // self.baud))
        return done

    def readinto(self, buf):
        if not self._poll.poll(0):
            return None
        try:
            n = self._read_file(buf) if self._file else self.stream.readinto(buf)
        except OSError:
            return None
        if n == 0:
            # Readable but empty: the host process went away. A real UART
            # cannot do this; raising lets the meter link re-open it.
            raise OSError("UART peer closed the connection")
        return n

    def _read_file(self, buf):
        # A file's readinto() waits to fill the whole buffer, so take bytes
        # one at a time while the pty has some (slow, but only for ptys).
        one = self._one
        n = 0
        while n < len(buf) and (n == 0 or self._poll.poll(0)):
            if not self.stream.readinto(one, 1):
                break
            buf[n] = one[0]
            n += 1
        return n

    def close(self):
        self.stream.close()


# -- SPI and pins ---------------------------------------------------------------
_sink = [None]  # callable(kind, a, b): ("pin", num, level) / ("spi", buf, None)


def set_bus_sink(fn):
    _sink[0] = fn


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, num, mode=OUT, pull=None, value=None, source=None):
        self.num = num
        self.mode = mode
        self.level = 0
        self.source = source  # callable() -> level, for inputs
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.source is not None:
                return self.source()
            return self.level
        self.level = 1 if v else 0
        s = _sink[0]
        if s is not None:
            s("pin", self.num, self.level)
        return None

    __call__ = value  # pin(1) as pin.value(1), one call instead of two


class Spi:
    def __init__(self, cfg):
        self.baud = cfg.get("baud", 4_000_000)

    def write(self, buf):
        s = _sink[0]
        if s is not None:
            s("spi", bytes(buf), None)


# -- networking -----------------------------------------------------------------
class Wifi:
    # The host is always "connected"; tests and the simulator can change it.
    def __init__(self):
        self.connected = True
        self.rssi_dbm = -55
        self.ssid = None

    def connect(self, ssid, key):
        self.ssid = ssid

    def isconnected(self):
        return self.connected

    def rssi(self):
        return self.rssi_dbm if self.connected else None


wifi = Wifi()


# -- reset and watchdog ---------------------------------------------------------
_CAUSE_FILE = "/reset_cause"


def reset_cause():
    # Cause of the reset that started this run: "power-on" unless the last
    # run left one (soft reset, watchdog).
    path = state_dir() + _CAUSE_FILE
    try:
        with open(path) as f:
            cause = f.read().strip()
        os.remove(path)
        return cause or "power-on"
    except OSError:
        return "power-on"


def _note_cause(cause):
    with open(state_dir() + _CAUSE_FILE, "w") as f:
        f.write(cause)


def reset(cause="soft"):
    _note_cause(cause)
    sys.exit(RESET_EXIT)


class Watchdog:
    def __init__(self, timeout_ms):
        import _thread

        self.timeout = timeout_ms
        self.fed = time.ticks_ms()
        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self.fed = time.ticks_ms()

    def _watch(self):
        while True:
            time.sleep_ms(100)
            if time.ticks_diff(time.ticks_ms(), self.fed) > clock.real_ms(self.timeout):
                _note_cause("watchdog")
                sys.stderr.write("hal: watchdog expired, resetting\n")
                # The shell's parent is this process: a hard stop, as a WDT.
                os.system("kill -9 $PPID")
