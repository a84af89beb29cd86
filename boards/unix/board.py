# Unix simulation board: the MicroPython Unix port with emulated hardware.
# Mirrors boards/esp32s3_eink29 (same partition layout, panel and
# co-processor) so the firmware sees the same device in simulation.
NAME = "unix-sim"
CHIP = "unix"
FLASH_SIZE = 0x800000

# (label, type, subtype, offset, size), as boards/esp32s3_eink29/partitions.csv
PARTITIONS = (
    ("nvs", 1, 0x02, 0x9000, 0x5000),
    ("otadata", 1, 0x00, 0xE000, 0x2000),
    ("ota_0", 0, 0x10, 0x10000, 0x1F0000),
    ("ota_1", 0, 0x11, 0x200000, 0x1F0000),
    ("store", 1, 0x40, 0x3F0000, 0x40000),
    ("vfs", 1, 0x81, 0x430000, 0x3D0000),
)

# ZigBee co-processor: a TCP connection to tools/coproc_emulator.py
# (IHD_UART overrides the target).
METER_UART = {"connect": "tcp:127.0.0.1:7001", "baud": 115200, "pace": False}
METER_PROTOCOL = "ezsp"

# e-ink panel: SPI plus pins; on Unix the bus is recorded, see hal.unix.
PANEL = "ssd1680_296x128"
PANEL_SPI = {"baud": 4_000_000}
PANEL_PINS = {"cs": 10, "dc": 9, "rst": 8, "busy": 7}
