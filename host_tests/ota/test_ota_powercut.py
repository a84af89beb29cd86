"""Power cuts and unconfirmed images on the Unix port: whatever happens
during an update, the device boots an image that verifies as it sits in the
(emulated NOR) flash, and an image that never confirms is rolled back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def images(keys, tmp_path_factory):
    d = tmp_path_factory.mktemp("otaimg")
    out = {}
    for name, ver, sv, size in (("v1", "1.0.0", 3, 12_000), ("v2", "2.0.0", 4, 20_000), ("v0", "0.9.0", 3, 12_000)):
        p = d / f"{name}.bin"
        p.write_bytes(keys.sign(tool.make_image(size=size, version=ver, secure_version=sv, seed=len(name) + sv)))
        out[name] = p
    return out


def prelude(keys, images) -> str:
    return (
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "import binascii, os\nimport ota_devsim as D\nimport hal, faults as F\n"
        "from ota import status as S\nfrom hal.norflash import PowerCut\n"
        f"T = [binascii.unhexlify({keys.digest[keys.trusted]!r})]\n"
        f"V1, V2, V0 = {str(images['v1'])!r}, {str(images['v2'])!r}, {str(images['v0'])!r}\n"
        "L = {'ota_0': os.stat(V1)[6], 'ota_1': os.stat(V2)[6]}\n"
    )


SWEEP = """
results = []
cut = 0
while True:
  for torn in (None, 100):
    D.factory(V1)
    D.power_on(cut=cut, torn=torn)
    done = False
    try:
        u = D.updater(T)
        D.install(u, V2)
        done = True
    except PowerCut:
        pass
    D.power_on()                      # power back: bootloader runs
    u = D.updater(T)
    label = D.booted_verified(T, L)
    if done:
        assert label == "ota_1" and u.status.state == S.CONFIRMING, (cut, label, u.status.state)
    elif label == "ota_1":
        # only possible once set_boot has landed: the new image is on trial
        assert u.status.state == S.CONFIRMING and D.otadata_state()[1] == 1, (cut, u.status.state)
    else:
        assert u.status.state == S.FAILED and u.status.error == F.OTA_FAILED, (cut, u.status.state)
    results.append(label)
  if done:
    break
  cut += 1
print("cuts", cut, "ota_0", results.count("ota_0"), "ota_1", results.count("ota_1"))
"""


def test_power_cut_at_every_flash_operation_of_an_update(mpy, keys, images):
    out = mpy.run(prelude(keys, images) + SWEEP, heap="256k", timeout=600).stdout.split()
    cuts = int(out[1])
    # 20 KB image: 6 blocks (erase + program each) + 2 otadata ops at least
    assert cuts >= 14, out
    assert int(out[5]) >= 2, out  # cuts late in set_boot boot the new image on trial


BOOT_CUTS = """
# Power cut while the bootloader or the confirmation rewrites otadata.
for phase in ("first-boot", "confirm"):
  for cut in range(0, 3):
    for torn in (None, 7):
      D.factory(V1)
      D.power_on()
      u = D.updater(T)
      D.install(u, V2)
      if phase == "first-boot":
          D.power_on(cut=cut, torn=torn)
          try:
              D.updater(T)
          except PowerCut:
              pass
      else:
          D.power_on()
          u = D.updater(T)
          D.arm(cut, torn)  # same boot, flash now fragile
          try:
              u.confirm_if_healthy(True, True)
          except PowerCut:
              pass
      D.power_on()
      u = D.updater(T)
      label = D.booted_verified(T, L)
      print(phase, cut, torn, label, u.status.state)
"""


def test_power_cut_in_bootloader_and_confirmation_writes(mpy, keys, images):
    lines = mpy.run(prelude(keys, images) + BOOT_CUTS, heap="256k").stdout.strip().splitlines()
    # (booted_verified() already proved each booted image verifies.) A cut
    # that lands nothing changes nothing; one that loses the new entry falls
    # back to the old image, reported as a rollback; a completed
    # confirmation sticks.
    want = ["first-boot 0 None ota_1 confirming"]
    want += ["first-boot %s ota_0 rolled-back" % c for c in ("0 7", "1 None", "1 7", "2 None", "2 7")]
    want += ["confirm %s ota_0 rolled-back" % c for c in ("0 None", "0 7", "1 None", "1 7")]
    want += ["confirm 2 None ota_1 idle", "confirm 2 7 ota_1 idle"]
    assert lines == want


def test_reset_just_before_and_just_after_set_boot(mpy, keys, images):
    code = """
# just before: verified in flash, set_boot not called
D.factory(V1); D.power_on()
u = D.updater(T)
inst = D.stage(u, V2)
D.power_on()
u = D.updater(T)
print("before", D.booted_verified(T, L), u.status.state, u.status.error)
# just after: set_boot landed, the record still says "installing"
D.factory(V1); D.power_on()
u = D.updater(T)
inst = D.stage(u, V2)
inst.part.set_boot()
D.power_on()
u = D.updater(T)
print("after", D.booted_verified(T, L), u.status.state, u.confirm_if_healthy(True, True))
D.power_on()
u = D.updater(T)
print("next", D.booted_verified(T, L), u.status.state, u.record.min_sv)
"""
    out = mpy.run(prelude(keys, images) + code, heap="256k").stdout.strip().splitlines()
    assert out == ["before ota_0 failed 52", "after ota_1 confirming True", "next ota_1 idle 4"]


def test_unconfirmed_image_is_rolled_back(mpy, keys, images):
    code = """
D.factory(V1); D.power_on()
f = F.Faults()
u = D.updater(T)
D.install(u, V2)
D.power_on()
u = D.updater(T)
u.status.faults = f
assert u.status.state == S.CONFIRMING
# unhealthy: never confirms
assert not u.confirm_if_healthy(False, True)
assert not u.confirm_if_healthy(True, False)
assert hal.running_partition().info()[4] == "ota_1"
D.power_on()                                   # e.g. reset by rollback_due()
u = D.updater(T, )
u.status.faults = f
st = u.after_boot()
print(D.booted_verified(T, L), u.status.state, u.status.error, u.status.reason.split(":")[0])
# the rollback is reported once, not at every boot
D.power_on()
u = D.updater(T)
print(D.booted_verified(T, L), u.status.state)
"""
    out = mpy.run(prelude(keys, images) + code, heap="256k").stdout.strip().splitlines()
    assert out == ["ota_0 rolled-back 51 rolled-back", "ota_0 idle"]


def test_rollback_deadline(mpy, keys, images):
    code = """
import time
D.factory(V1); D.power_on()
u = D.updater(T)
D.install(u, V2)
D.power_on()
u = D.updater(T, confirm_timeout_ms=50)
assert u.status.state == S.CONFIRMING and not u.rollback_due()
time.sleep_ms(80)
print(u.rollback_due())
u.confirm_if_healthy(True, True)
print(u.rollback_due(), u.status.state)
"""
    assert mpy.run(prelude(keys, images) + code, heap="256k").stdout.split() == ["True", "False", "confirmed"]


def test_no_second_update_while_on_trial(mpy, keys, images):
    code = """
D.factory(V1); D.power_on()
u = D.updater(T)
D.install(u, V2)
D.power_on()
u = D.updater(T)
import asyncio
ok = asyncio.run(u.run({"url": "http://127.0.0.1:9/none"}))
print(ok, u.status.state, u.status.reason.split(":")[0], hal.running_partition().info()[4])
print(u.on_command(b"junk"), u.status.state)
print(u.confirm_if_healthy(True, True), u.status.state)
D.power_on()
u = D.updater(T)
print(D.booted_verified(T, L), u.status.state)
"""
    # Refused without touching the slot that holds the rollback image, and
    # without spoiling the trial: the image still confirms and stays.
    out = mpy.run(prelude(keys, images) + code, heap="256k").stdout.strip().splitlines()
    assert out == ["False confirming busy ota_1", "2 confirming", "True confirmed", "ota_1 idle"]


def test_confirmed_floor_refuses_older_secure_version(mpy, keys, images):
    code = """
D.factory(V1); D.power_on()
u = D.updater(T)
D.install(u, V2)                  # secure_version 4
D.power_on()
u = D.updater(T)
u.confirm_if_healthy(True, True)
D.power_on()
u = D.updater(T)
from ota.verify import Reject
try:
    D.install(u, V0)              # secure_version 3 < 4
    print("installed")
except Reject as e:
    print(e.code(), u.record.min_sv)
"""
    assert mpy.run(prelude(keys, images) + code, heap="256k").stdout.split() == ["secure-version", "4"]


def test_update_after_a_rollback_survives_cuts_in_set_boot(mpy, keys, images):
    # Regression for the emulated bootloader: after a rollback the aborted
    # otadata entry must not stay "current", or set_boot overwrites the entry
    # of the running image and a cut leaves the new image booted without a
    # trial (no rollback possible) -- ESP-IDF never touches the active entry.
    code = """
from hal import unix_partition as UP
L2 = {"ota_0": os.stat(V2)[6], "ota_1": os.stat(V2)[6]}
for cut in range(0, 3):
  for torn in (None, 5):
    D.factory(V1); D.power_on()
    u = D.updater(T); D.install(u, V2)      # v2 -> ota_1
    D.power_on(); u = D.updater(T); assert u.confirm_if_healthy(True, True)
    D.power_on(); u = D.updater(T); D.install(u, V2)   # -> ota_0, on trial
    D.power_on(); D.updater(T)              # trial boot, never confirmed
    D.power_on(); u = D.updater(T)          # rolled back to ota_1
    assert u.status.state == S.ROLLED_BACK and D.booted_verified(T, L2) == "ota_1"
    assert hal.Partition(hal.Partition.BOOT).info()[4] == "ota_1"
    inst = D.stage(u, V2)                   # third try, into ota_0 again
    D.arm(cut, torn)
    try:
        inst.part.set_boot()
        done = True
    except PowerCut:
        done = False
    D.power_on(); D.updater(T)
    label = D.booted_verified(T, L2)
    st = UP.ota_state()
    print(cut, torn, done, label, st[1] if label == "ota_0" else "-")
"""
    lines = mpy.run(prelude(keys, images) + code, heap="256k").stdout.strip().splitlines()
    assert len(lines) == 6, lines
    for line in lines:
        cut, torn, done, label, state = line.split()
        # Either the running image (ota_1) again, or the new one on trial
        # (PENDING_VERIFY = 1), so that it can still be rolled back.
        assert label == "ota_1" or state == "1", line
        if done == "True":
            assert label == "ota_0", line
