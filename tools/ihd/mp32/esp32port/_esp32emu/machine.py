# The ESP32 port's `machine` module (ports/esp32/modmachine.c, machine_uart.c,
# machine_wdt.c, machine_rtc.c, machine_pin.c, machine_hw_spi.c) for an
# ESP32-S3 on the Unix port: what firmware/hal/esp32.py uses.
#   * reset_cause(): the port's constants and values (PWRON_RESET 1 .. SOFT_RESET
#     5), fixed for the whole boot. reset() (esp_restart: ESP_RST_SW, read back
#     as HARD_RESET), soft_reset() and the watchdog record the reason in
#     $IHD_STATE/esp32_reset and end the process; no record is a power-on.
#   * UART: IHD_UART="tcp:HOST:PORT" (default tcp:127.0.0.1:7001), the host
#     process on the other end of the wire (ihd emulator). Stream
#     semantics of machine_uart.c: read()/readinto() wait `timeout` ms for the
#     first byte, then `timeout_char` between bytes, and return None when
#     nothing came (EAGAIN); pollable (select.poll, asyncio.StreamReader).
#   * WDT: cannot be stopped; a thread kills the process (a hard stop, as the
#     chip's reset) when not fed within `timeout` ms of real (host) time.
#   * SPI writes and output-pin changes go to the panel recorder file
#     IHD_PANEL_REC in boards/unix/panelrec.py's format (no refresh markers:
#     on hardware nothing names the refreshes).
# Deviations from the C source: the UART connection is made by the
# constructor, which raises OSError if the peer is not listening (a real
# UART always opens); a peer that closes its end makes read()/readinto()
# raise OSError (a real wire just goes silent; this ends the emulated link
# as on the Unix board); no RX ring buffer overflow (the host socket buffers
# instead of `rxbuf`); write() never paces at the baud rate; input pins
# read their pull level (PULL_UP 1, else 0: the emulated panel is never
# busy); freq() changes nothing; unique_id() is a fixed Espressif MAC.
import os
import sys

from _esp32emu import host, read_file, remove_file, write_file
from _esp32emu import time as _time

# modmachine.c: MP_PWRON_RESET = 1, then HARD, WDT, DEEPSLEEP, SOFT
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_RESET_FILE = "esp32_reset"
_EXIT = 75  # what launchers (tools/ihd/sim/proc.py) take as "restart me"
_REASONS = {"SW": HARD_RESET, "PANIC": HARD_RESET, "WDT": WDT_RESET, "SOFT": SOFT_RESET}

_cause = read_file(_RESET_FILE)
remove_file(_RESET_FILE)
_cause = _REASONS.get(_cause.strip(), 0) if _cause else PWRON_RESET
_MEM_FILE = "esp32_rtcmem"  # RTC.memory(): RTC_NOINIT_ATTR RAM, lost at power-on
if _cause == PWRON_RESET:
    remove_file(_MEM_FILE)


def reset_cause():
    return _cause


def _restart(reason):
    # The chip restarts: the RTC keeps counting, RAM does not survive.
    _time.save_rtc()
    write_file(_RESET_FILE, reason)


def reset():
    _restart("SW")
    sys.exit(_EXIT)


def soft_reset():
    _restart("SOFT")
    sys.exit(_EXIT)


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


_freq = [160_000_000]  # CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ on the S3


def freq(hz=None):
    if hz is None:
        return _freq[0]
    if hz // 1_000_000 not in (20, 40, 80, 160, 240):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq[0] = hz // 1_000_000 * 1_000_000
    return None


def idle():
    _time.sleep_ms(1)


# -- panel bus recording --------------------------------------------------------
_rec = [None, False]  # [file, opened]


def _recorder():
    if not _rec[1]:
        _rec[1] = True
        path = os.getenv("IHD_PANEL_REC")
        _rec[0] = open(host(path), "wb") if path else None
    return _rec[0]


# -- Pin (machine_pin.c: GPIO modes and pulls of ESP-IDF) ---------------------
class Pin:
    IN = 1  # GPIO_MODE_INPUT
    OUT = 3  # GPIO_MODE_INPUT_OUTPUT
    OPEN_DRAIN = 7  # GPIO_MODE_INPUT_OUTPUT_OD
    PULL_DOWN = 1
    PULL_UP = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        # ESP32-S3: GPIO 0..21 and 26..48
        if not (0 <= id <= 21 or 26 <= id <= 48):
            raise ValueError("invalid pin")
        self.id = id
        self._mode = None
        self._pull = None
        self._level = 0
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if value is not None:
            self.value(value)
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull

    def value(self, v=None):
        if v is None:
            if self._mode == Pin.IN:
                return 1 if self._pull == Pin.PULL_UP else 0
            return self._level
        self._level = 1 if v else 0
        f = _recorder()
        if f is not None:
            f.write(bytes((0x50, self.id, self._level)))
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return "Pin(%d)" % self.id


# -- SPI (machine_hw_spi.c: ids 1 and 2 on the S3, SPI2/SPI3) -------------------
class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=500000, *, polarity=0, phase=0, bits=8, firstbit=0, sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%d) doesn't exist" % id)
        self.id = id
        self.baudrate = baudrate
        self._hdr = bytearray(b"S\0\0\0\0")

    def write(self, buf):
        f = _recorder()
        if f is not None:
            n = len(buf)
            h = self._hdr
            h[1], h[2], h[3], h[4] = n & 255, n >> 8 & 255, n >> 16 & 255, n >> 24
            f.write(h)
            f.write(buf)

    def deinit(self):
        pass


# -- RTC (machine_rtc.c) -----------------------------------------------------------
class RTC:
    def datetime(self, dt=None):
        # (year, month, day, weekday, hours, minutes, seconds, subseconds[us])
        if dt is None:
            s, ms = _time.rtc_ms()
            t = _time.gmtime(s)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], ms * 1000)
        if len(dt) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(dt))
        s = _time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0))
        _time.set_rtc(s, dt[7] // 1000)
        return None

    def memory(self, data=None):
        # 2048 bytes of RTC slow RAM that survive every reset but a power-on
        if data is None:
            m = read_file(_MEM_FILE)
            return bytes(int(m[i : i + 2], 16) for i in range(0, len(m), 2)) if m else b""
        if len(data) > 2048:
            raise ValueError("buffer too long")
        write_file(_MEM_FILE, "".join("%02x" % b for b in bytes(data)))
        return None

    def init(self, dt):
        # machine_rtc_init: the datetime without the weekday
        self.datetime((dt[0], dt[1], dt[2], 0, dt[3], dt[4], dt[5], dt[6]))


# -- WDT (machine_wdt.c, the task watchdog) -----------------------------------------
_wdt = [None]


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        w = _wdt[0]
        if w is None:
            _wdt[0] = w = _Watch()
        w.timeout = timeout  # esp_task_wdt_reconfigure: a new WDT() retimes it
        w.feed()

    def feed(self):
        _wdt[0].feed()


class _Watch:
    # Runs on the host's real clock (the device clock is the main thread's),
    # and counts the timeout in real ms, not device ms: IHD_CLOCK speeds up
    # the clock, not the CPU, so in device ms the host CPU looks `speed`
    # times slower than it is (at 2000x a 30 s timeout would fire on a 15 ms
    # host stall, which an ESP32 runs in well under a second). A loop that
    # never feeds still resets after `timeout` real ms.
    def __init__(self):
        import _thread

        self.timeout = 0
        self.fed = _time._treal_ms()
        _thread.start_new_thread(self._run, ())

    def feed(self):
        self.fed = _time._treal_ms()

    def _run(self):
        while True:
            _time._T.sleep_ms(20)
            if _time._tdiff(_time._treal_ms(), self.fed) > self.timeout:
                _restart("WDT")
                sys.stderr.write("machine: watchdog expired, resetting\n")
                os.system("kill -9 $PPID")  # the shell's parent is this process


# -- UART (machine_uart.c) ------------------------------------------------------------
try:
    import io

    _Base = io.IOBase
except (ImportError, AttributeError):
    _Base = object


class UART(_Base):
    def __init__(self, id, baudrate=115200, *, tx=-1, rx=-1, rxbuf=-1, timeout=-1, timeout_char=-1, **kw):
        if not 0 <= id <= 2:  # SOC_UART_NUM on the S3
            raise ValueError("UART(%d) does not exist" % id)
        self.id = id
        self.baudrate = baudrate
        self.tx, self.rx = tx, rx
        self.rxbuf = 256 if rxbuf < 0 else rxbuf
        self.timeout = 0 if timeout < 0 else timeout
        self.timeout_char = 0 if timeout_char < 0 else timeout_char
        self._sock = None
        self._open()

    def _open(self):
        import select
        import socket

        target = os.getenv("IHD_UART") or "tcp:127.0.0.1:7001"
        if not target.startswith("tcp:"):
            raise ValueError("IHD_UART must be tcp:HOST:PORT")
        _, host, port = target.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        s.setsockopt(6, 1, 1)  # TCP_NODELAY: each byte leaves at once, as on a wire
        s.setblocking(False)
        self._sock = s
        self._p = _time_select().poll()
        self._p.register(s, select.POLLIN)

    def _poll_host(self):
        return self._sock

    def deinit(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _wait(self, ms):
        # Is a byte there within `ms` device ms?
        return bool(self._p.poll(ms))

    def any(self):
        if self._sock is None or not self._wait(0):
            return 0
        try:
            return len(self._sock.recv(4096, 2))  # MSG_PEEK
        except OSError:
            return 0

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        mv = memoryview(buf)
        got = 0
        wait = self.timeout
        while got < n and self._wait(wait):
            try:
                k = self._sock.readinto(mv[got:n])
            except OSError:
                break
            if k == 0:
                raise OSError(5, "UART peer closed the connection")
            got += k or 0
            wait = self.timeout_char
        return got if got else None

    def read(self, nbytes=None):
        buf = bytearray(nbytes if nbytes is not None else max(1, self.any()))
        n = self.readinto(buf)
        if n is None:
            return None
        return bytes(buf) if n == len(buf) else bytes(buf[:n])

    def readline(self):
        out = b""
        while True:
            c = self.read(1)
            if c is None:
                return out or None
            out += c
            if c == b"\n":
                return out

    def write(self, buf):
        mv = memoryview(buf)
        done = 0
        while done < len(mv):
            n = self._sock.write(mv[done:])
            if n:
                done += n
        return done

    def flush(self):
        pass

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            r = 0
            if arg & 1 and self._wait(0):
                r |= 1
            return r | (arg & 4)
        return 0


def _time_select():
    from _esp32emu import select

    return select
