# Hardware abstraction layer: the only door from firmware to hardware.
#
# One interface, two implementations chosen by the board (board.HAL):
#   hal/esp32.py  real machine/esp32/network modules on the device;
#   hal/unix.py   emulation on the MicroPython Unix port (tests, simulator).
# Both export:
#   clock                 .utc() .valid() .set_utc(s) .ticks_ms() .real_ms(ms)
#   Uart(cfg)             .write(buf) .readinto(buf) .close(); .stream is pollable
#   Spi(cfg), Pin(n, mode, value=)   display bus (Unix: recorded via set_bus_sink)
#   partition(label)      raw data partition, block-device protocol
#   Partition             esp32.Partition: RUNNING, find, get_next_update, set_boot,
#                         mark_app_valid_cancel_rollback
#   running_partition(), rolled_back()
#   wifi                  .connect(ssid, key) .isconnected() .rssi()
#   reset(cause), reset_cause(), Watchdog(timeout_ms).feed(), RESET_EXIT
# plus, identical on both ports and so defined here, UDP sockets.
import socket
import sys

import board

# The board decides (board.HAL): boards/esp32s3_eink29 runs hal/esp32.py also
# on the host, over the ESP32 port emulation (tools/ihd/mp32/esp32port). A board
# without HAL falls back to the port.
PORT = getattr(board, "HAL", None) or ("unix" if sys.platform in ("linux", "darwin") else "esp32")
if PORT == "unix":
    from hal.unix import *  # noqa: F403
else:
    from hal.esp32 import *  # noqa: F403


def udp_socket(port=0):
    # Non-blocking UDP socket bound to `port` (0: any); pollable by asyncio.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.setblocking(False)
    return s


def resolve(host, port):
    # Host name or dotted address -> sockaddr for sendto(); OSError if unknown.
    return socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
