# The ESP32 port's network module, emulated (tools/ihd/mp32/esp32port/_esp32emu).
from _esp32emu.network import *  # noqa: F403
