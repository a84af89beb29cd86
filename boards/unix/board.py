# Unix simulation board: the MicroPython Unix port with emulated hardware.
# Mirrors boards/esp32s3_eink29 (same partition layout, panel and
# co-processor) so the firmware sees the same device in simulation.
NAME = "unix-sim"
CHIP = "unix"
OTA_BOARD = "esp32s3-eink29"  # accepts the images of the board it mirrors
FLASH_SIZE = 0x800000
HAL = "unix"  # firmware/hal/unix.py: emulated hardware

# (label, type, subtype, offset, size), as boards/esp32s3_eink29/partitions.csv
PARTITIONS = (
    ("nvs", 1, 0x02, 0x9000, 0x5000),
    ("otadata", 1, 0x00, 0xE000, 0x2000),
    ("ota_0", 0, 0x10, 0x10000, 0x1F0000),
    ("ota_1", 0, 0x11, 0x200000, 0x1F0000),
    ("store", 1, 0x40, 0x3F0000, 0x40000),
    ("vfs", 1, 0x81, 0x430000, 0x3D0000),
)

# ZigBee co-processor: a TCP connection to ihd emulator
# (IHD_UART overrides the target).
METER_UART = {"connect": "tcp:127.0.0.1:7001", "baud": 115200, "pace": False}
METER_PROTOCOL = "ezsp"
# prepayment, supplier messages, ambient indication, support identity
# (meter/zcl_prepay.py; app/app.py passes it to the link)
METER_SUPPLIER = True

# e-ink panel: SPI plus pins; on Unix the bus is recorded, see hal.unix.
PANEL = "ssd1680_296x128"
PANEL_SPI = {"baud": 4_000_000}
PANEL_PINS = {"cs": 10, "dc": 9, "rst": 8, "busy": 7}


def _env(name):
    import os

    return os.getenv(name)


# CPU profile (app/taskprof.py): IHD_PROFILE=tasks (per-task CPU in the
# status lines) or calls (also call counts per function, printed at an
# orderly stop); ihd sim --profile tasks|calls.
PROFILE = _env("IHD_PROFILE") or None


def _collector():
    # The simulator's collector: IHD_COLLECTOR="host:port" (ihd sim
    # picks a free port), else the collector's default port on loopback.
    import os

    return os.getenv("IHD_COLLECTOR") or "127.0.0.1:4700"


# Embedded configuration for the simulation (app/config.py format), used
# when the state directory holds no provisioned config.json, so `make run`
# needs no set-up. The key is public: it only ever protects simulated
# traffic on loopback (ihd sim gives the collector the same one), and
# the OTA key digest is that of sim_ota_signing_key.pem beside this file
# (`espsecure digest-sbv2-public-key`), a key for simulated updates only.
DEFAULT_CONFIG = {
    "format": 1,
    "device_id": 1001,
    "key_id": 1,
    "key": "53494d204f4e4c592d206e6f742061207265616c20646576696365206b657921",  # "SIM ONLY- not a real device key!"
    "endpoints": [_collector()],
    "wifi_ssid": "sim-wifi",
    "wifi_key": "simulated",
    "meter_protocol": "ezsp",
    "install_code": "83FED3407A939723A5C639B26916D505C3B5",
    "ota_keys": ["c1856af356633dfd5fcd4e6a3bf9af9e9a38001580664cec026eee25b19f2a2c"],
}


def bus_recorder():
    # Where the display bus goes on this board: IHD_PANEL_REC=path records it
    # for ihd panel (boards/unix/panelrec.py); otherwise it is counted.
    import os

    from panelrec import PanelRecorder

    return PanelRecorder(os.getenv("IHD_PANEL_REC"))
