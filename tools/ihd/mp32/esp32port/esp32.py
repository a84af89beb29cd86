# The ESP32 port's esp32 module, emulated (tools/ihd/mp32/esp32port/_esp32emu).
from _esp32emu.esp32 import *  # noqa: F403
