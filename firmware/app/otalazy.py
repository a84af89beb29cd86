# OTA on demand. The updater (ota/updater.py and what it imports: command,
# http, install, verify, sbv2, image, keylist) is ~5 KB of module objects on
# the 32-bit heap, idle on all but a few days of a device's life. It is
# imported only while it has work: an update requested, or, after boot, an
# update in flight at the last reset (the pending record of ota/status.py)
# to judge and, for a new image, to confirm or roll back. Once idle again
# (failed, refused, confirmed, keys adopted) release() drops it and its
# modules; the next command imports them afresh (frozen on the device: no
# compilation). The app sees the Updater's own API: status, on_command(),
# after_boot(), confirm_if_healthy(), rollback_due().
#
# Arena: in a ~96 KB heap after hours of running the free memory (15-20 KB)
# lies in holes of at most ~1.5 KB (micropython.mem_info(): "max free sz"
# 57-99 blocks of 16 B), so the update's 1-1.2 KB buffers could not be
# allocated when a command came (MemoryError with 15 KB free). One
# contiguous bytearray is reserved here, at boot while the heap is whole,
# and kept for the device's life: the updater carves it (ota/updater.py
# carve()) into the installer's flash chunk, the verifier's signature
# block and the download buffer. It survives release(): nothing to
# allocate in one piece when the next command comes.
import gc
import sys

from micropython import const

from ota import status as S

# installer chunk 1024 + signature block 1216 and RSA workspace 784 (sbv2.py
# BUF_SIZE) + network buffer 1024: ota/updater.py ARENA_SIZE
ARENA_SIZE = const(4048)

# every module the updater imports, directly or not (ota.status stays)
_MODULES = ("updater", "command", "http", "install", "verify", "sbv2", "image", "keylist")


class Ota:
    def __init__(self, trusted, faults=None):
        self.trusted = trusted
        self.status = S.Status(faults)
        self.updater = None
        self.arena = bytearray(ARENA_SIZE)

    def _load(self):
        u = self.updater
        if u is None:
            # the modules' objects go into the holes a collection opens
            # first, not beside whatever garbage the last minutes left
            gc.collect()
            from ota.updater import Updater

            u = self.updater = Updater(self.trusted, status=self.status, arena=self.arena)
        return u

    def after_boot(self):
        # Without a pending record there is nothing to judge: no updater
        # (a damaged record is judged: ota/updater.py after_boot()).
        r = S.Record()
        if r.pending is None and r.damaged is None:
            return self.status.state
        return self._load().after_boot()

    def on_command(self, payload):
        return self._load().on_command(payload)

    def busy(self):
        # An update downloading, verifying or installing: the app holds off
        # what can wait (display redraws) so the update has the heap.
        u = self.updater
        return u is not None and u.busy

    def confirm_if_healthy(self, meter_up, cloud_ok):
        u = self.updater
        return u is not None and u.confirm_if_healthy(meter_up, cloud_ok)

    def rollback_due(self):
        u = self.updater
        return u is not None and u.rollback_due()

    def release(self):
        # -> True when an idle updater and its modules were dropped. Kept
        # while an update runs, a new image is on trial or set to boot.
        u = self.updater
        if u is None or u.busy or self.status.state in (S.CONFIRMING, S.REBOOTING):
            return False
        self.updater = None
        u = None
        mods = sys.modules
        pkg = mods.get("ota")
        for name in _MODULES:
            if mods.pop("ota." + name, None) is not None and pkg is not None:
                try:
                    delattr(pkg, name)
                except AttributeError:
                    pass
        gc.collect()
        return True
