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


def test_firmware_boots_on_the_emulated_esp32_board(tmp_path):
    # The app itself on hal/esp32.py: boots, runs its tasks for a few device
    # seconds with the RTC not yet set, and reports the missing configuration
    # (the device's /config.json lives in its VFS, which is not emulated yet).
    (tmp_path / "state").mkdir()
    dev = sc.Device(tmp_path / "state")
    code = "from app import app\napp.main()\n"
    env = {"IHD_CLOCK": f"utc={sc.UTC},speed=20,invalid", "IHD_UART": "tcp:127.0.0.1:9"}
    try:
        dev.run(code, env=env, expect=None, timeout=4)
        raise AssertionError("the firmware stopped")
    except sc.subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode()
    assert "boot 1.0.0 on esp32s3-eink29 (reset: power-on, config: none)" in out
    status = [line for line in out.split("\n") if line.startswith("status ")][0]
    assert '"clock_valid": false' in status and '"C01"' in status
