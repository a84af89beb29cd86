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
# allocated when a command came (MemoryError with 15 KB free). The updater
# carves one contiguous buffer (ota/updater.py carve()) into the
# installer's flash chunk, the verifier's signature block and the download
# buffer. It is the display's frame buffer (display/epd.py lend()), idle
# while an update runs (app.display_task draws nothing then) and allocated
# at boot while the heap was whole: a 4 KB bytearray of its own, held for
# the device's life, was what kept the supplier features (prepayment,
# messages, ambient, identity) off the 96 KB board (test_sim_ota). Without
# a panel, or one whose frame is smaller, one is reserved here at boot.
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
    def __init__(self, trusted, faults=None, panel=None):
        # panel: the display's driver (display/epd.py), whose frame buffer
        # is lent to each update as the arena
        self.trusted = trusted
        self.status = S.Status(faults)
        self.updater = None
        if panel is not None and len(panel.buf) >= ARENA_SIZE:
            self.panel = panel
            self.arena = panel.buf
        else:
            self.panel = None
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
        u = self._load()
        r = u.on_command(payload)
        if u.busy and self.panel is not None:
            self.panel.lend()  # the update now writes the frame buffer
        return r

    def busy(self):
        # The updater loaded and not on trial: an update downloading,
        # verifying or installing, set to boot (the reset seconds away), or
        # just over and not yet released (the health task drops it within
        # 30 s). The app holds off what can wait (display redraws, the
        # snapshot's history) so the update has the heap: redraws beside the
        # updater's modules right after a refusal and while set to boot ran
        # the 96 KB heap out of memory (test_sim_ota[mp32] with the supplier
        # features: display task, MemoryError with 6.5-9.5 KB free in
        # pieces, 2 of 5 runs). An image on trial (confirming) keeps the
        # updater for up to 15 minutes: the display draws then.
        u = self.updater
        return u is not None and (u.busy or self.status.state != S.CONFIRMING)

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
