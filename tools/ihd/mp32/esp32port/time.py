# The ESP32 port's time module, emulated (tools/ihd/mp32/esp32port/_esp32emu).
from _esp32emu.time import *  # noqa: F403
