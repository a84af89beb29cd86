"""OTA on request in the whole-device simulation (ihd sim --ota-foreign-at, --ota-tampered-at, --ota-at).

The operator pushes three images, each announced by the collector with a
command made for the file as served (size and SHA-256 match, so only the
device's own verification stands in the way), all served over HTTP by
ihd ota serve: one well formed but signed by a key the device does not
trust, one signed with the trusted key and then altered (a byte flipped),
then a good one. The firmware downloads each, refuses the first two, installs
the third, resets into it (the emulated bootloader) and confirms it once
meter and cloud are up. Readings keep flowing across the reset.
"""

import json
import subprocess

import mpy as mpymod

ROOT = mpymod.ROOT
OTA_REJECTED = 50  # firmware/faults.py


def test_foreign_and_tampered_images_refused_then_signed_update_installed_booted_confirmed(tmp_path):
    out = tmp_path / "run"
    cmd = [*mpymod.sim_command(), "--protocol", "ezsp"]
    cmd += ["--hours", "3", "--speed", "300", "--no-record-display"]
    cmd += ["--ota-foreign-at", "0.4", "--ota-tampered-at", "0.8", "--ota-at", "1.4", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = (out / "firmware.log").read_text()
    assert r.returncode == 0, r.stderr[-2000:] + log[-2000:]
    s = json.loads((out / "summary.json").read_text())
    hist = s["ota_history"]
    states = [(h["state"], h["version"]) for h in hist]
    rejected = {h["version"]: h["reason"].split(":")[0] for h in hist if h["state"] == "rejected"}
    # downloaded in full (size and hash match the command), refused by verification:
    # the foreign image by the trust check, the altered one by its integrity check
    assert rejected == {"1.3.0": "untrusted-key", "1.2.0": "checksum"}, hist
    assert s["faults_raised"].get(str(OTA_REJECTED), 0) >= 1, s["faults_raised"]
    # the signed one: verified, the device reset into it, and it confirmed itself
    assert s["ota"]["state"] == "confirmed" and s["ota"]["version"] == "1.1.0", states
    assert (
        states.index(("confirmed", "1.1.0")) > states.index(("rejected", "1.2.0")) > states.index(("rejected", "1.3.0"))
    )
    # one reset, for the good update: a refused image is never booted
    assert s["resets"] == 1 and s["boots"] == 2 and s["crashes"] == 0
    events = "\n".join(s["events"])
    assert events.count("ota update requested") == 3, events
    assert "ota after boot: confirming" in events and "ota new image healthy: confirmed" in events, events
    # metering carried on across the update's reset
    assert s["readings_lost"] == 0 and s["readings_committed"] > 1000
    assert s["committed_vs_stored"]["differ"] == 0
    # the status line says what the device does and runs (before: "v" nowhere,
    # no OTA state, and version 1.0.0 still after "confirmed 1.1.0")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sim ")]
    # (a status line every 10 simulated minutes: a download may fall between two)
    assert any("| OTA 1.1.0 confirmed" in ln for ln in lines), lines[-5:]
    assert any("| OTA 1.2.0 rejected (checksum" in ln for ln in lines), lines[-5:]
    versions = [ln.split(" | ")[1] for ln in lines if " | v?" not in ln]  # v?: before the first status
    assert versions[0] == "v1.0.0" and versions[-1] == "v1.1.0", (versions[0], versions[-1])
    assert s["version"] == "1.1.0"
