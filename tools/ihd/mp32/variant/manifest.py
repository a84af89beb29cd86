# ruff: noqa: F821  (include/package/module are defined by the manifest runner)
# Freeze manifest of the mp32 Unix build: the same firmware packages as
# boards/esp32s3_eink29/manifest.py, plus what only the emulation needs
# (hal/unix*.py, hal/norflash.py and the ESP32 port-module emulation), so
# tests and the simulator run firmware bytecode from the binary, not the heap.
include("$(MPY_DIR)/extmod/asyncio")
require("ssl")  # as the ESP32 port (bundle-networking): HTTPS OTA downloads

FW = "../../../../firmware"  # paths are relative to this file

package("hal", base_path=FW)
module("faults.py", base_path=FW)
module("main.py", base_path=FW)
for pkg in ("app", "meter", "store", "uplink", "display", "ota"):
    package(pkg, base_path=FW)
# The ESP32 port's machine/esp32/network/time/select emulation; only the tiny
# shims in tools/ihd/mp32/esp32port/*.py stay files (on MICROPYPATH for the
# esp32s3_eink29 board only, so the Unix board keeps the built-in time/select).
package("_esp32emu", base_path="../esp32port")
# asyncio's pure-Python task queue: the emulated time module makes asyncio use
# it (the C _asyncio keys tasks with the host's ticks, not the device's).
package("asyncio", files=("task.py",), base_path="$(MPY_DIR)/extmod")
