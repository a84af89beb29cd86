# Emulation of the ESP32 port's own modules (machine, esp32, network, time,
# select) for the mp32 Unix build, so that the real firmware/hal/esp32.py runs
# on the host. Frozen into mp32 (tools/ihd/mp32/variant/manifest.py); the shim
# files beside this package (machine.py, esp32.py, ...) are on MICROPYPATH
# only for the esp32s3_eink29 board. Written against ports/esp32/*.c of the
# pinned MicroPython; every deviation is listed at the top of its module and
# in docs/hal.md ("ESP32 port emulation").
#
# This module: shared helpers (reaching the Unix port's built-in modules that
# the shims shadow, the state directory, environment numbers).
import os
import sys


def builtin(name):
    # The Unix port's own `time` / `select`: with sys.path empty, import skips
    # both the file system and sys.modules and returns the built-in
    # (py/builtinimport.c), even while a shim of that name is loaded.
    p = sys.path
    sys.path = []
    try:
        return __import__(name)
    finally:
        sys.path = p


_host = [None]  # (mount point, host cwd) once boot.py has moved the host's files


def host(path):
    # A host path as the firmware process reaches it: unchanged until
    # _esp32emu.boot mounts the device's littlefs at "/" and the host's
    # filesystem at "/host"; after that "/host" + the absolute path.
    h = _host[0]
    if h is None or path.startswith(h[0] + "/"):
        return path
    if not path.startswith("/"):
        path = h[1] + "/" + path
    return h[0] + path


_dir = [None]


def state_dir():
    # Device state that outlives a reset: $IHD_STATE (default run/state), as
    # hal/unix.py, so the same launchers and tests drive both boards.
    d = _dir[0]
    if d is None:
        d = host(os.getenv("IHD_STATE") or "run/state")
        p = ""
        for part in d.split("/"):
            p = p + part + "/" if p or part else "/"
            if part:
                try:
                    os.mkdir(p)
                except OSError:
                    pass
        _dir[0] = d
    return d


def read_file(name):
    # Contents of a state file, or None.
    try:
        with open(state_dir() + "/" + name) as f:
            return f.read()
    except OSError:
        return None


def write_file(name, text):
    with open(state_dir() + "/" + name, "w") as f:
        f.write(text)


def remove_file(name):
    try:
        os.remove(state_dir() + "/" + name)
    except OSError:
        pass


def clock_spec():
    # IHD_CLOCK="utc=S,speed=X[,invalid]" (as hal/unix.py) -> (utc, speed, valid)
    utc, speed, valid = None, 1, True
    for item in (os.getenv("IHD_CLOCK") or "").split(","):
        if item == "invalid":
            valid = False
        elif "=" in item:
            k, v = item.split("=")
            if k == "utc":
                utc = int(v)
            elif k == "speed":
                speed = int(v)
    return utc, speed, valid
