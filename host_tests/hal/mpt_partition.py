# Emulated esp32.Partition: block-device protocol, OTA slots, bootloader.


import hal
from hal import unix_partition
from hal.norflash import NorFlash, PowerCut
from hal.unix import state_dir

HEAP = "96k"


def _flash(**kw):
    import board

    f = NorFlash(state_dir() + "/flash.bin", board.FLASH_SIZE, **kw)
    hal.attach_flash(f)
    return f


def test_block_device_protocol():
    _flash()
    p = hal.partition("store")
    assert p.ioctl(5, 0) == 4096
    assert p.ioctl(4, 0) == 0x40000 // 4096
    p.writeblocks(2, b"abc", 10)  # program only, at an offset
    b = bytearray(3)
    p.readblocks(2, b, 10)
    assert b == b"abc"
    p.writeblocks(2, b"\x00" * 4096)  # no offset: erase then program
    p.readblocks(2, b, 10)
    assert b == b"\x00\x00\x00"
    p.ioctl(6, 2)
    p.readblocks(2, b, 10)
    assert b == b"\xff\xff\xff"


def test_partition_bounds_enforced():
    _flash()
    p = hal.partition("store")
    n = p.ioctl(4, 0)
    try:
        p.readblocks(n, bytearray(1))
        assert False, "read past the partition end"
    except Exception as e:
        assert "beyond" in str(e)


def test_info_and_find_match_board_table():
    _flash()
    p = hal.partition("store")
    assert p.info() == (1, 0x40, 0x3F0000, 0x40000, "store", False)
    apps = hal.Partition.find(hal.Partition.TYPE_APP)
    assert [a.info()[4] for a in apps] == ["ota_0", "ota_1"]


def test_fresh_device_boots_ota0_and_updates_to_ota1():
    _flash()
    run = hal.running_partition()
    assert run.info()[4] == "ota_0"
    nxt = run.get_next_update()
    assert nxt.info()[4] == "ota_1"
    nxt.set_boot()
    assert unix_partition.ota_state() == (2, unix_partition.ST_NEW)
    # reboot: bootloader moves NEW to PENDING_VERIFY and runs ota_1
    assert unix_partition.boot() == "ota_1"
    assert unix_partition.ota_state() == (2, unix_partition.ST_PENDING)
    hal.Partition.mark_app_valid_cancel_rollback()
    assert unix_partition.ota_state() == (2, unix_partition.ST_VALID)
    assert unix_partition.boot() == "ota_1"
    assert not unix_partition.rolled_back()


def test_unconfirmed_image_rolls_back():
    _flash()
    hal.running_partition().get_next_update().set_boot()
    assert unix_partition.boot() == "ota_1"  # first boot of new image
    # never confirmed; next boot rolls back to ota_0
    assert unix_partition.boot() == "ota_0"
    assert unix_partition.rolled_back()
    # confirming the rolled-back image must not resurrect the aborted one
    hal.Partition.mark_app_valid_cancel_rollback()
    assert unix_partition.boot() == "ota_0"


def test_rollback_returns_to_previous_confirmed_slot():
    _flash()
    hal.running_partition().get_next_update().set_boot()
    assert unix_partition.boot() == "ota_1"
    hal.Partition.mark_app_valid_cancel_rollback()
    # second update, to ota_0, never confirmed
    hal.Partition(hal.Partition.RUNNING).get_next_update().set_boot()
    assert unix_partition.boot() == "ota_0"
    assert unix_partition.boot() == "ota_1"
    assert unix_partition.rolled_back()


def test_power_cut_during_set_boot_keeps_a_bootable_slot():
    # Cut at every flash operation of set_boot: the device boots either the
    # old slot or the new one, never nothing.
    for cut in range(0, 4):
        for torn in (None, 8):
            f = _flash()
            f.erase(0xE000 // 4096)
            f.erase(0xE000 // 4096 + 1)
            f.close()
            f = _flash(cut_after=cut, torn=torn)
            try:
                hal.running_partition().get_next_update().set_boot()
                done = True
            except PowerCut:
                done = False
            f.close()
            _flash()
            label = unix_partition.boot()
            assert label == ("ota_1" if done else label)
            assert label in ("ota_0", "ota_1")
