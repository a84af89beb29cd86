# MicroPython side of the OTA fault tests: an emulated device (NOR flash,
# otadata, bootloader) that can lose power at any flash operation and boot
# again. Imported by the snippets host_tests/ota/test_*.py run on the Unix
# port; images come from the CPython side (signed by espsecure).
import os

import board
import hal
from hal import unix_partition
from hal.norflash import NorFlash
from ota import status as S
from ota.updater import Updater
from ota.verify import Reject, verify_partition

FLASH = None
CHUNK = 1000  # odd size: blocks straddle writes


def _path():
    return hal.state_dir() + "/flash.bin"


def wipe():
    for p in (_path(), _path() + ".wear", hal.state_dir() + "/ota.json"):
        try:
            os.remove(p)
        except OSError:
            pass


def power_on(cut=None, torn=None):
    # A new boot: reopen the flash (optionally with a power cut armed); the
    # emulated bootloader runs at the first look at the running partition.
    global FLASH
    if FLASH is not None:
        FLASH.close()
    FLASH = NorFlash(_path(), board.FLASH_SIZE, cut_after=cut, torn=torn)
    hal.attach_flash(FLASH)
    return FLASH


def arm(cut, torn=None):
    # Arm a power cut on the flash of this boot (no reboot).
    FLASH.cut_after = FLASH.ops + cut
    FLASH.torn = torn


def factory(path):
    # Flash an image into ota_0 as the factory would (no otadata).
    wipe()
    power_on()
    p = hal.Partition("ota_0")
    write_file(p, path)
    return os.stat(path)[6]


def write_file(part, path):
    buf = bytearray(4096)
    blk = 0
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if n < 4096:
                buf[n:] = b"\xff" * (4096 - n)
            part.writeblocks(blk, buf)
            blk += 1


def updater(trusted, **kw):
    u = Updater(trusted, record=S.Record(), **kw)
    u.after_boot()
    return u


def stage(u, path, size=None):
    # The download path without a network: the same Installer, fed from a
    # file; -> the installer with the image written and verified in flash.
    inst = u.begin({"url": "http://local/x", "size": size or os.stat(path)[6]})
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            inst.write(mv[:n])
    inst.finish()
    return inst


def install(u, path, size=None):
    # stage() then commit (set_boot): as after a download.
    inst = u.begin({"url": "http://local/x", "size": size or os.stat(path)[6]})
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            inst.write(mv[:n])
    return u.commit(inst)


def booted_verified(trusted, lengths):
    # Assert the running slot holds an image that verifies, as it sits in
    # flash; -> the slot label. lengths: {label: image length}.
    from ota.install import device_policy

    run = hal.running_partition()
    label = run.info()[4]
    pol = device_policy(trusted, S.Record())
    pol.min_secure_version = 0  # what is booted must verify; the floor is tested elsewhere
    try:
        verify_partition(run, lengths[label], pol)
    except Reject as e:
        raise AssertionError("booted %s does not verify: %s" % (label, e.args[0]))
    return label


def otadata_state():
    return unix_partition.ota_state()
