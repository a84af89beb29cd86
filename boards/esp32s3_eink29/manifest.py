# ruff: noqa: F821  (include/package/module are defined by the manifest runner)
# Freeze manifest for a custom MicroPython build for this board:
#   make -C ports/esp32 BOARD=ESP32_GENERIC_S3 \
#       FROZEN_MANIFEST=/path/to/ihd/boards/esp32s3_eink29/manifest.py
# (docs/boards.md). Freezing puts the firmware's bytecode in flash, so it
# runs from ROM and leaves the ~100 KB heap to readings, buffers and the
# framebuffer. Paths are relative to this file.
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)

FW = "../../firmware"

# The Unix emulation (hal/unix*.py, hal/norflash.py) never ships.
package("hal", files=("__init__.py", "esp32.py"), base_path=FW)
module("faults.py", base_path=FW)
module("main.py", base_path=FW)
for pkg in ("app", "meter", "store", "uplink", "display", "ota"):
    package(pkg, base_path=FW)
module("board.py")
