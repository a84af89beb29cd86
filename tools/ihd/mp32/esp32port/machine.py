# The ESP32 port's machine module, emulated (tools/ihd/mp32/esp32port/_esp32emu).
from _esp32emu.machine import *  # noqa: F403
