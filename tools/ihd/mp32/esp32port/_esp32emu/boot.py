# The ESP32 port's boot-time filesystem (ports/esp32/modules/_boot.py with
# flashbdev.py and inisetup.py): littlefs v2 on the "vfs" data partition of
# the emulated flash ($IHD_STATE/flash.bin, the chip the store and OTA use),
# mounted at "/", formatted on the first boot. What the device keeps there
# (/config.json, the uplink sequence file, /ota.json) lives on the emulated
# NOR, so IHD_FLASH_CUT / IHD_FLASH_TORN cut littlefs writes like any other.
#
# The device runs the frozen _boot.py before main.py; the Unix port has no
# such hook, so launchers import this first: -c "import _esp32emu.boot;
# import main" (tools/ihd/sim/proc.py). Explicit rather than done by importing
# the machine shim: a snippet that never asks for a filesystem (the HAL
# scenarios) keeps the flash untouched by littlefs.
#
# As _boot.py: mount the partition (vfs.mount autodetects littlefs, else FAT,
# which fails on anything else); on OSError inisetup.setup(): a partition
# whose first block is all 0xFF gets VfsLfs2.mkfs() and a boot.py; anything
# else is "corrupted" and the device prints its message forever. Then
# main.c runs /boot.py, here too.
# Host side: the Unix port mounts the host at "/"; it moves to "/host" (a
# VfsPosix, host paths unchanged below it) and sys.path, the state directory
# and the panel recording follow (_esp32emu.host()); cwd becomes "/" of the
# littlefs, as on the device.
# Deviations: littlefs file times come from the host clock (the Unix port's
# mp_hal_time_ns), not the emulated RTC; the firmware never reads them.
# For an EZSP device the ASH and EZSP protocol timers (meter/ash.py's ticks,
# meter/ezsp_link.py's command timeouts) are given the host's real ticks,
# as hal/unix.py does: the co-processor emulator is a real-time host process
# whose ~1 ms answers would be 2 s of device time at 2000x, past ASH's
# 1.6 s acknowledgement timeout (213 link restarts and 15% of readings not
# taken per simulated day before). On the device both clocks are one.
# Likewise meter/supervise.py's LATE_MS (real ms a report may wait on the
# host between the co-processor and its timestamp) is scaled by the speed,
# which hal/unix.py tells the firmware through clock.real_ms() and the
# device HAL cannot: at 2000x a 20 ms host stall is 40 device seconds, and
# the dropout check took it for missed readings (M06 raised 245 times in a
# 7-day soak; 0 on the Unix board). And supervise's own `time` (its
# real-time floor for silence and probe timeouts) is the host's.
import gc
import os
import sys

import vfs

import _esp32emu

# hal before esp32: the emulated esp32 module needs hal.norflash, and hal's
# package init imports hal.esp32, which imports esp32 (a cycle if esp32 came
# first). main imports hal anyway; nothing here writes flash.
import hal  # noqa: F401, I001

HOST = "/host"


def _fs_corrupted():
    import time

    while 1:
        print(
            """\
The filesystem appears to be corrupted. If you had important data there, you
may want to make a flash snapshot to try to recover it. Otherwise, perform
factory reprogramming of MicroPython firmware (completely erase flash, followed
by firmware programming).
"""
        )
        time.sleep(3)


def _setup(bdev):
    # inisetup.setup() for a "vfs" partition
    buf = bytearray(bdev.ioctl(5, 0))
    bdev.readblocks(0, buf)
    for b in buf:
        if b != 0xFF:
            _fs_corrupted()
    del buf
    print("Performing initial setup")
    vfs.VfsLfs2.mkfs(bdev)
    fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/")
    with open("boot.py", "w") as f:
        f.write(
            """\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""
        )


def _move_host():
    if _esp32emu._host[0] is not None:
        return
    cwd = os.getcwd()
    sd = _esp32emu.state_dir()
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(), HOST)
    _esp32emu._host[0] = (HOST, cwd.rstrip("/"))
    _esp32emu._dir[0] = _esp32emu.host(sd)
    sys.path[:] = [p if p in ("", ".frozen") else _esp32emu.host(p) for p in sys.path]


def _protocol():
    # The configured co-processor protocol (app/config.py's file), else the board's.
    try:
        import json

        with open("config.json") as f:
            p = json.load(f).get("meter_protocol")
        if p:
            return p
    except (OSError, ValueError, AttributeError):
        pass
    import board

    return getattr(board, "METER_PROTOCOL", None)


def _host_latency_in_device_time():
    from _esp32emu.time import _T, speed
    from meter import supervise

    supervise.LATE_MS = supervise.LATE_MS * speed
    # Its real-time floor for supervision timeouts (REAL_MIN_MS, rx_real)
    # reads time.ticks_ms(): the host's, as on the Unix board.
    supervise.time = _T


def _link_timers_in_real_time():
    from _esp32emu.time import real_ticks_ms
    from meter import ash, ezsp_link

    base = ash.Ash

    class Ash(base):
        def __init__(self, write, on_frame, on_event, ticks=real_ticks_ms):
            super().__init__(write, on_frame, on_event, ticks)

    ash.Ash = Ash
    ezsp_link.ticks_ms = real_ticks_ms


def boot():
    from esp32 import Partition  # flashbdev.py

    _move_host()
    bdev = Partition.find(Partition.TYPE_DATA, label="vfs")
    bdev = bdev[0] if bdev else None
    try:
        if bdev:
            vfs.mount(bdev, "/")
    except OSError:
        _setup(bdev)
    os.chdir("/")
    gc.collect()
    try:
        with open("boot.py") as f:
            src = f.read()
    except OSError:
        src = None
    if src:
        exec(src, {"__name__": "__main__"})
    del src
    if _protocol() == "ezsp":
        _link_timers_in_real_time()
    _host_latency_in_device_time()
    gc.collect()


boot()
