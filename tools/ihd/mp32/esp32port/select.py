# The ESP32 port's select module, emulated (tools/ihd/mp32/esp32port/_esp32emu).
from _esp32emu.select import *  # noqa: F403
