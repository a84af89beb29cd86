# ruff: noqa: F821  (include/package/module are defined by the manifest runner)
# Freeze manifest of the mp32 Unix build: the same firmware packages as
# boards/esp32s3_eink29/manifest.py, plus what only the emulation needs
# (hal/unix*.py, hal/norflash.py and the ESP32 port-module emulation), so
# tests and the simulator run firmware bytecode from the binary, not the heap.
include("$(MPY_DIR)/extmod/asyncio")

FW = "../../../firmware"  # paths are relative to this file

package("hal", base_path=FW)
module("faults.py", base_path=FW)
module("main.py", base_path=FW)
for pkg in ("app", "meter", "store", "uplink", "display", "ota"):
    package(pkg, base_path=FW)
