# ESP32-S3 (8 MB flash, no PSRAM) with a 2.9" SSD1680 e-ink panel and an
# EFR32 EZSP co-processor on UART1.
#
# Wiring (ESP32-S3 GPIO numbers):
#   panel  SCK 12, MOSI 11, CS 10, DC 9, RST 8, BUSY 7 (SPI2/FSPI)
#   EZSP   TX 17 -> co-processor RX, RX 18 <- co-processor TX, 115200 8N1,
#          RTS/CTS not wired (ASH uses XON/XOFF-free software flow control)
NAME = "esp32s3-eink29"
CHIP = "esp32s3"
FLASH_SIZE = 0x800000
HAL = "esp32"  # firmware/hal/esp32.py (also on the host, over tools/ihd/mp32/esp32port)

# Read from the chip's partition table at run time (esp32.Partition); this
# copy is for tools and must match partitions.csv.
PARTITIONS = (
    ("nvs", 1, 0x02, 0x9000, 0x5000),
    ("otadata", 1, 0x00, 0xE000, 0x2000),
    ("ota_0", 0, 0x10, 0x10000, 0x1F0000),
    ("ota_1", 0, 0x11, 0x200000, 0x1F0000),
    ("store", 1, 0x40, 0x3F0000, 0x40000),
    ("vfs", 1, 0x81, 0x430000, 0x3D0000),
)

METER_UART = {"id": 1, "baud": 115200, "tx": 17, "rx": 18, "rxbuf": 2048}
METER_PROTOCOL = "ezsp"
# prepayment, supplier messages, ambient indication, support identity
# (meter/zcl_prepay.py; app/app.py passes it to the link)
METER_SUPPLIER = True

PANEL = "ssd1680_296x128"
PANEL_SPI = {"id": 2, "baud": 4_000_000, "sck": 12, "mosi": 11}
PANEL_PINS = {"cs": 10, "dc": 9, "rst": 8, "busy": 7}
