"""Signed key lists (firmware/ota/keylist.py, `ihd ota keylist`):
trusted keys are added and withdrawn in the field by a list signed with a
key the device trusts now, never rolled back, never emptied, and stored so
that a power cut while storing keeps the old list or the new, nothing else.

Lists and images are signed by espsecure; each list travels as an "ota"
command (format 2) over HTTP, the same download path as an image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

HERE = Path(__file__).resolve().parent
OTA = [sys.executable, "-m", "ihd.ota"]


@pytest.fixture(scope="module")
def www(keys, tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    t, o, e = (bytes.fromhex(keys.digest[k]) for k in (keys.trusted, keys.other, keys.e3))
    (d / "v1.bin").write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    (d / "by-other.bin").write_bytes(
        keys.sign(tool.make_image(size=20_000, version="2.0.0", secure_version=3), keys.other)
    )
    (d / "by-trusted.bin").write_bytes(keys.sign(tool.make_image(size=20_000, version="2.1.0", secure_version=3)))
    tool.make_keylist([keys.trusted], 1, [t, o], d / "add-other-v1.kl")  # add "other"
    tool.make_keylist([keys.other], 2, [o], d / "withdraw-trusted-v2.kl")  # withdraw "trusted"
    tool.make_keylist([keys.other], 2, [o, e], d / "same-version-v2.kl")
    tool.make_keylist([keys.trusted], 3, [t], d / "by-withdrawn-v3.kl")  # signer no longer trusted
    tool.make_keylist([keys.other], 4, [], d / "empty-v4.kl", allow_empty=True)
    return d


def test_add_withdraw_replay_untrusted_empty_and_reboot(mpy, keys, www):
    srv = tool.serve_in_thread(www)
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}/"
        cmds = {p.name: tool.update_command(base + p.name, p.read_bytes()) for p in www.iterdir()}
        assert cmds["add-other-v1.kl"]["kind"] == "keylist" and "kind" not in cmds["v1.bin"]
        code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import asyncio, binascii
import ota_devsim as D
from hal import unix_partition as UP
from ota import command
C = {cmds!r}
D.factory({str(www / "v1.bin")!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])
def step(name):
    ok = asyncio.run(u.run(C[name], timeout_ms=2000, backoff_ms=5))
    print(name, ok, u.status.state, u.status.error, (u.status.reason or "-").split(":")[0], u.keys_version,
          len(u.trusted), UP.ota_state())
    if ok:   # an image set to boot: back to the factory image for the next step
        D.power_on(); D.factory({str(www / "v1.bin")!r}); D.power_on()
step("by-other.bin")            # not trusted yet
step("add-other-v1.kl")
step("by-other.bin")            # now trusted
step("add-other-v1.kl")         # replayed
step("withdraw-trusted-v2.kl")
step("by-trusted.bin")          # signed by the withdrawn key
step("same-version-v2.kl")      # equal version
step("by-withdrawn-v3.kl")      # signed by the withdrawn key
step("empty-v4.kl")             # signed by a trusted key, but empty
D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})])   # reboot: the stored list holds
print("reboot", u.keys_version, [binascii.hexlify(d).decode() for d in u.trusted])
# the command format 2 round trip
import ota_hosttool_payload
"""
        payload = tool.command_payload(cmds["add-other-v1.kl"])
        code = code.replace("import ota_hosttool_payload", f"print(command.parse({payload!r})['kind'])")
        out = mpy.run(code, heap="256k", timeout=300).stdout.strip().splitlines()
    finally:
        srv.shutdown()
    assert out == [
        "by-other.bin False rejected 50 untrusted-key 0 1 None",
        "add-other-v1.kl False keys-updated 0 - 1 2 None",
        "by-other.bin True rebooting 0 - 1 2 (2, 0)",
        "add-other-v1.kl False rejected 50 keylist-rollback 1 2 None",
        "withdraw-trusted-v2.kl False keys-updated 0 - 2 1 None",
        "by-trusted.bin False rejected 50 untrusted-key 2 1 None",
        "same-version-v2.kl False rejected 50 keylist-rollback 2 1 None",
        "by-withdrawn-v3.kl False rejected 50 untrusted-key 2 1 None",
        "empty-v4.kl False rejected 50 keylist-empty 2 1 None",
        f"reboot 2 ['{keys.digest[keys.other]}']",
        "keylist",
    ], out


def test_keylist_signature_sector_rules_apply(mpy, keys, www, tmp_path):
    # A good list with a stray byte after its block, or its body altered
    # (a key swapped in after signing): refused, the stored list unchanged.
    good = (www / "add-other-v1.kl").read_bytes()
    garbage = bytearray(good)
    garbage[-1] = 0
    swapped = bytearray(good)
    swapped[12 + 32 : 12 + 64] = bytes.fromhex(keys.digest[keys.e3])
    srcs = {"garbage": bytes(garbage), "swapped": bytes(swapped), "truncated": good[:-4096]}
    code = "from ota import keylist as K\nfrom ota.verify import Reject\nimport binascii\n"
    code += f"T = [binascii.unhexlify({keys.digest[keys.trusted]!r})]\n"
    for name, data in srcs.items():
        code += f"""
s = K.KeyListSink(T, 0)
try:
    s.write(memoryview({data!r}))
    s.finish()
    print({name!r}, "adopted")
except Reject as e:
    print({name!r}, e.code())
"""
    out = mpy.run(code).stdout.strip().splitlines()
    assert out == ["garbage sig-sector-garbage", "swapped digest-mismatch", "truncated truncated"], out


POWERCUT = """
import sys
sys.path.insert(0, {here!r})
import vfs, binascii
import ota_devsim as D
import hal
from hal.norflash import PowerCut
from ota import keylist as K
A = [binascii.unhexlify({a!r})]
B = [binascii.unhexlify({a!r}), binascii.unhexlify({b!r})]
P = "/lfs/otakeys.bin"

def mount(fresh=False):
    try:
        vfs.umount("/lfs")
    except OSError:
        pass
    part = hal.partition("vfs")
    if fresh:
        vfs.VfsLfs2.mkfs(part)
    vfs.mount(vfs.VfsLfs2(part), "/lfs")

D.wipe(); D.power_on()
mount(True)
K.save(P, 1, A)
seen = {{}}
cut = 0
while True:
    D.power_on()
    mount()
    K.save(P, 1, A)                      # the old list, written in full
    D.arm(cut, (cut % 3) * 40 or None)
    done = False
    try:
        K.save(P, 2, B)
        done = True
    except PowerCut:
        pass
    D.power_on()                          # power back
    mount()
    got = K.load(P)
    assert got in ((1, A), (2, B)), (cut, got)
    if done:
        assert got == (2, B), cut
    seen[got[0]] = seen.get(got[0], 0) + 1
    if done:
        break
    cut += 1
print("cuts", cut, "old", seen.get(1, 0), "new", seen.get(2, 0))
"""


def test_power_cut_while_storing_keeps_old_or_new_list(mpy, keys):
    # littlefs (as on the device's /) on the emulated NOR 'vfs' partition; a
    # power cut at every flash operation of K.save, some torn mid-write.
    code = POWERCUT.format(here=str(HERE), a=keys.digest[keys.trusted], b=keys.digest[keys.other])
    # (the last line: a file object a cut left open may be finalised by the
    # GC later, with the heap locked, and MicroPython prints that MemoryError
    # - a host artefact: a real power cut runs no finaliser)
    out = mpy.run(code, heap="256k", timeout=600).stdout.strip().splitlines()[-1].split()
    assert out[0] == "cuts" and int(out[1]) >= 3, out
    assert int(out[3]) >= 1 and int(out[5]) >= 1, out  # both outcomes occurred


def test_cli_keylist(tmp_path, keys):
    d = keys.digest[keys.other]
    out = tmp_path / "k.kl"
    p = subprocess.run(
        [*OTA, "keylist", "--list-version", "7", "--key-digest", d, "--key", str(keys.trusted)]
        + ["-k", str(keys.trusted), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert d in p.stdout and keys.digest[keys.trusted] in p.stdout
    data = out.read_bytes()
    assert len(data) == 8192 and tool.keylist_info(data)["version"] == 7
    # espsecure verifies the list's signature as it would an image's
    ok = subprocess.run(
        [str(tool.BIN / "espsecure"), "verify-signature", "--version", "2", "--keyfile", str(keys.trusted), str(out)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    empty = subprocess.run(
        [*OTA, "keylist", "--list-version", "8", "-k", str(keys.trusted), "-o", str(tmp_path / "e.kl")],
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 2 and "refusing an empty key list" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "e.kl").exists()


def test_a_damaged_copy_of_the_stored_list_does_not_revive_a_withdrawn_key(mpy, tmp_path):
    # Before: one stored file; any damage to it (bit rot, a torn sector)
    # made load() return None and the provisioned ota_keys, which still name
    # the key the list withdrew, were trusted again. Now two copies; a load
    # that finds one damaged writes it again from the other.
    p = str(tmp_path / "otakeys.bin")
    out = mpy.run(
        f"""
from ota import keylist as K
new = [b"\\x02" * 32]
def flip(name):
    with open(name, "r+b") as f:  # one bit flipped
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 1]))
K.save({p!r}, 2, new)              # the list that withdrew key 1
for name in ({p!r}, {p!r} + ".bak"):
    flip(name)
    got = K.load({p!r})
    print("ok" if got == (2, new) else "bad %r" % (got,))
    print("healed" if K._read(name) == (2, new) else "not healed")
flip({p!r})                        # both damaged: nothing left to trust but the provisioned keys
flip({p!r} + ".bak")
print(K.load({p!r}))
"""
    ).stdout.split("\n")
    assert out[:5] == ["ok", "healed", "ok", "healed", "None"], out
