"""The HAL interface through the real firmware/hal/esp32.py, on mp32 over the
ESP32 port emulation (tools/mp32/esp32port): one test per scenario of
esp32scenarios.py (clock, speed, UART, partitions, OTA, watchdog, wifi, bus)."""

import esp32scenarios as sc
import pytest

RUNTIMES = ("mp32",)  # the ESP32 port emulation is built for mp32 only


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=lambda f: f.__name__)
def test_esp32_hal(scenario, tmp_path):
    (tmp_path / "state").mkdir()
    scenario(sc.Device(tmp_path / "state"))
