"""The HAL interface through the real firmware/hal/esp32.py, on mp32 over the
ESP32 port emulation (tools/ihd/mp32/esp32port): one test per scenario of
esp32scenarios.py (clock, speed, UART, partitions, OTA, watchdog, wifi, bus)."""

import esp32scenarios as sc
import pytest

RUNTIMES = ("mp32",)  # the ESP32 port emulation is built for mp32 only
# Alone, after the parallel pass of make test: clock_runs_at_speed compares the
# device clock with the host's over a short wall time (failed with 2 workers).
pytestmark = pytest.mark.serial


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=lambda f: f.__name__)
def test_esp32_hal(scenario, tmp_path):
    (tmp_path / "state").mkdir()
    scenario(sc.Device(tmp_path / "state"))


def test_firmware_boots_on_the_emulated_esp32_board(tmp_path):
    # The app itself on hal/esp32.py, booted as the port boots (_esp32emu.boot:
    # littlefs on the "vfs" partition at "/"). Unprovisioned: runs its tasks
    # with the RTC not yet set and reports the missing /config.json.
    (tmp_path / "state").mkdir()
    dev = sc.Device(tmp_path / "state")
    code = "import _esp32emu.boot\nfrom app import app\napp.main()\n"
    env = {"IHD_CLOCK": f"utc={sc.UTC},speed=20,invalid", "IHD_UART": "tcp:127.0.0.1:9"}
    try:
        dev.run(code, env=env, expect=None, timeout=4)
        raise AssertionError("the firmware stopped")
    except sc.subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode()
    assert "Performing initial setup" in out  # inisetup: the first boot formats the littlefs
    assert "boot 1.0.0 on esp32s3-eink29 (reset: power-on, config: none)" in out
    status = [line for line in out.split("\n") if line.startswith("status ")][0]
    assert '"clock_valid": false' in status and '"C01"' in status


def test_provisioned_esp32_board_reads_the_meter(tmp_path):
    # ihd provision writes the config; the simulator's esp32_push copies
    # it into /config.json of the emulated littlefs (as `mpremote cp`); the
    # device boots from it, sets its clock from the meter (EZSP emulator on
    # the UART) and commits readings to its store.
    from ihd.sim import proc as simproc

    (tmp_path / "state").mkdir()
    dev = sc.Device(tmp_path / "state")
    cfg = tmp_path / "config.json"
    py = str(sc.ROOT / ".venv" / "bin" / "python")
    mk = [py, "-m", "ihd.provision", "make", "--device-id", "4097", "--generate-key"]
    mk += ["--endpoint", "127.0.0.1:9", "--wifi-ssid", "sim-wifi", "--protocol", "ezsp"]
    mk += ["--install-code", "83FED3407A939723A5C639B26916D505C3B5", "-o", str(cfg)]
    mk += ["--ota-key", str(sc.ROOT / "boards" / "unix" / "sim_ota_signing_key.pem")]
    r = sc.subprocess.run(mk, capture_output=True, text=True, cwd=sc.ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    simproc.esp32_push("esp32s3_eink29", dev.state, cfg)
    port = simproc.free_port()
    emu = [py, "-m", "ihd.emulators", "serve", "--protocol", "ezsp", "--port", str(port)]
    emu += ["--speed", "200", "--start", str(sc.UTC), "--duration", "3600"]
    p = sc.subprocess.Popen(emu, stdout=sc.subprocess.PIPE, stderr=sc.subprocess.STDOUT, text=True)
    try:
        assert p.stdout.readline().startswith("listening on")
        code = "import _esp32emu.boot\nfrom app import app\napp.main()\n"
        env = {"IHD_CLOCK": f"utc={sc.UTC},speed=200,invalid", "IHD_UART": f"tcp:127.0.0.1:{port}"}
        try:
            dev.run(code, env=env, expect=None, timeout=8)
            raise AssertionError("the firmware stopped")
        except sc.subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode()
    finally:
        p.kill()
        p.wait()
    assert "Performing initial setup" not in out  # formatted once, by the push
    assert "boot 1.0.0 on esp32s3-eink29 (reset: power-on, config: /config.json)" in out, out[-2000:]
    assert '"clock_valid": true' in out, out[-2000:]  # the meter's time set the RTC
    assert any(line.startswith("commit 1 ") for line in out.split("\n")), out[-2000:]
