# The whole app, built for each protocol, fits the device's heap on the
# 32-bit runtime with the firmware frozen (mp32, as an ESP32-S3 without
# PSRAM: ~100-110 KB for MicroPython): after boot and a collection at most
# CAP bytes are in use (docs/sim.md "Heap on mp32": 72.8 KB measured, EZSP),
# leaving the rest for the peaks (batch datagram, status line, display
# refresh). On the 64-bit wheel the code's own objects are in the heap and
# words are twice as wide: there the figure is printed, not judged.
import gc
import json
import sys

import board
import hal
from app import app

HEAP = "512k"
CAP = 78 * 1024


def _boot(protocol):
    # the RAVEn link opens its UART when built: a listening socket stands in
    import socket

    srv = socket.socket()
    port = 47100
    while True:
        try:
            srv.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            break
        except OSError:
            port += 1
    srv.listen(1)
    board.METER_UART = {"connect": "tcp:127.0.0.1:%d" % port, "baud": 115200, "pace": False}
    d = dict(board.DEFAULT_CONFIG)
    d["meter_protocol"] = protocol
    with open(hal.state_dir() + "/config.json", "w") as f:
        f.write(json.dumps(d))
    a = app.boot()
    assert a.cfg is not None and a.cfg.meter_protocol == protocol
    assert a.store is not None and a.uplink is not None and a.link is not None
    gc.collect()
    used = gc.mem_alloc()
    print("heap after boot", protocol, used)
    if sys.maxsize < 2**32:  # 32-bit: the device's layout
        assert used <= CAP, "%s: %d bytes in use after boot, cap %d" % (protocol, used, CAP)


def test_ezsp_app_fits():
    _boot("ezsp")


def test_raven_app_fits():
    _boot("raven")
