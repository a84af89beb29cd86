# The OTA state machine: an authenticated "ota" command in, a verified image
# booted and confirmed (or refused, or rolled back) out.
#
#   on_command(payload)
#                   the uplink's CMD_OTA hook: parse (ota/command.py), answer
#                   a DONE status at once, update in a background task and
#                   reset into the new image when it is set to boot
#   run(cmd)        download (ota/http.py) -> verify + write (ota/install.py)
#                   -> read-back verify -> set_boot; True: reset to boot it
#   after_boot()    once per boot: was the last update booted, rolled back,
#                   or cut short? sets the status and faults accordingly
#   confirm_if_healthy(meter_up, cloud_ok)
#                   a new image confirms itself only once the meter link is
#                   up and the cloud answers; unconfirmed, the bootloader rolls
#                   it back at the next reset
#   rollback_due()  True once a new image has failed to become healthy for
#                   confirm_timeout_ms: the app then resets into the rollback
# Trusted keys: the provisioned ota_keys until a signed key list
# (ota/keylist.py, a command with "kind": "keylist") replaces them.
# Commands come from the uplink, which authenticates them; the image's own
# signature is what is trusted (docs/ota.md has the command format).
import asyncio
import binascii
import gc
import time

import hal
from ota import command
from ota import status as S
from ota.http import NET_BUF, DownloadError, fetch
from ota.install import CHUNK, FlashMismatch, Installer, device_policy, running_identity
from ota.sbv2 import BUF_SIZE
from ota.verify import Reject

CONFIRM_TIMEOUT_MS = 15 * 60 * 1000
ARENA_SIZE = CHUNK + BUF_SIZE + NET_BUF  # app/otalazy.py reserves it at boot


def carve(arena):
    # -> (installer chunk, signature block + RSA workspace, network
    # buffer): memoryviews of
    # one buffer reserved at boot (app/otalazy.py), or None without one
    # (each part then allocates its own).
    if arena is None:
        return None, None, None
    if len(arena) < ARENA_SIZE:
        raise ValueError("ota arena too small")
    mv = memoryview(arena)
    return mv[:CHUNK], mv[CHUNK : CHUNK + BUF_SIZE], mv[CHUNK + BUF_SIZE : ARENA_SIZE]


class Updater:
    def __init__(
        self,
        trusted,
        status=None,
        record=None,
        clock=None,
        confirm_timeout_ms=CONFIRM_TIMEOUT_MS,
        keys_path=None,
        arena=None,
    ):
        from ota import keylist

        self.keys_path = keys_path or keylist.default_path()
        kl = keylist.load(self.keys_path)  # a stored signed list supersedes ota_keys
        self.keys_version = kl[0] if kl else 0
        self.trusted = kl[1] if kl else trusted
        self.status = status or S.Status()
        self.record = record or S.Record()
        self.clock = clock or hal.clock
        self.confirm_timeout_ms = confirm_timeout_ms
        self._boot_ms = self.clock.ticks_ms()
        self.installer = None
        self._chunk, self._blk, self._net = carve(arena)
        self.busy = False
        self.reset_delay_ms = 3000  # let the outcome reach the cloud and the display
        self.retry_ms = (60_000, 300_000, 900_000)  # device time between download attempts

    # -- uplink command -------------------------------------------------------------
    def on_command(self, payload, reset=None, **fetch_kw):
        # -> DONE status (ota/command.py ST_*); never raises.
        # A refused command leaves the state alone (an image on trial must
        # stay CONFIRMING to be confirmed); only the reason records it.
        try:
            cmd = command.parse(payload)
        except (command.CommandError, ValueError) as e:
            self.status.note(e.args[0] if e.args else "bad-command")
            return command.ST_BAD_PAYLOAD
        # REBOOTING: the other slot now holds the verified image set to boot;
        # a second image would erase it in the seconds before the reset (a
        # key list touches no slot).
        st = self.status.state
        if self.busy or st == S.CONFIRMING or (st == S.REBOOTING and cmd.get("kind") != "keylist"):
            self.status.note("busy: update running, rebooting, or new image on trial")
            return command.ST_BUSY
        self.busy = True
        asyncio.create_task(self._update(cmd, reset or hal.reset, fetch_kw))
        return command.ST_ACCEPTED

    async def _update(self, cmd, reset, fetch_kw):
        try:
            ok = await self.run(cmd, **fetch_kw)
        finally:
            self.busy = False
        if ok:
            await asyncio.sleep_ms(self.reset_delay_ms)
            reset("ota")

    # -- install ----------------------------------------------------------------
    def begin(self, cmd):
        # Validate the command and prepare the inactive slot's installer.
        # The last attempt's installer (kept for diagnostics) goes first:
        # its block buffer and verifier state must not double the peak.
        self.installer = None
        gc.collect()
        url = cmd.get("url")
        size = cmd.get("size")
        sha = cmd.get("sha256")
        if not isinstance(url, str) or (size is not None and not isinstance(size, int)):
            raise DownloadError("bad-command: url (str) and size (int) required", True)
        if self.status.state in (S.CONFIRMING, S.REBOOTING):
            raise DownloadError("busy: new image on trial or set to boot", True)
        if sha is not None:
            try:
                sha = binascii.unhexlify(sha)
            except ValueError:
                sha = b""
            if len(sha) != 32:
                raise DownloadError("bad-command: sha256 must be 64 hex digits", True)
        target = hal.running_partition().get_next_update()
        policy = device_policy(self.trusted, self.record)
        inst = Installer(target, policy, self.status, sha, self._chunk, self._blk)
        inst.total = size
        self.status.begin(cmd.get("version"))
        self.record.set_pending(target.info()[4], self.status.version, None, "installing")
        self.installer = inst
        return inst

    def commit(self, inst):
        # Final check from flash, then point the bootloader at the new slot.
        self.status.set(S.VERIFYING, 100)
        v = inst.finish()
        img = v.image
        inst.part.set_boot()
        self.record.set_pending(inst.part.info()[4], img.version, img.secure_version, "booting")
        self.status.version = img.version
        self.status.set(S.REBOOTING, 100)
        return v

    async def run(self, cmd, **fetch_kw):
        # -> True when the new image is set to boot (caller resets), False
        # when the update failed or was refused (status says why).
        if self.status.state == S.CONFIRMING:
            # The other slot holds the image we would roll back to.
            self.status.note("busy: new image on trial")
            return False
        if cmd.get("kind") == "keylist":
            return await self._keylist(cmd, fetch_kw)
        if self.status.state == S.REBOOTING:
            # The other slot holds the verified image about to boot.
            self.status.note("busy: new image set to boot")
            return False
        try:
            inst = self.begin(cmd)
            f = await self._download(cmd, inst, fetch_kw)
            inst.total = f.total
            self.commit(inst)
            return True
        except Reject as e:
            self._fail(S.REJECTED, e.args[0])
        except (DownloadError, FlashMismatch, OSError) as e:
            self._fail(S.FAILED, e.args[0] if e.args and isinstance(e.args[0], str) else repr(e))
        except Exception as e:  # a bug must not leave the record "installing"
            self._fail(S.FAILED, "internal: %r" % e)
        return False

    async def _download(self, cmd, inst, fetch_kw):
        # A network outage outlasts the fetcher's own retries: wait and go
        # on from the bytes already verified and written (same installer).
        for wait_ms in self.retry_ms + (None,):
            try:
                # Pace limits in device time (ota/http.py): a drip-feeding
                # server ends the update (permanent), a later command retries.
                return await fetch(cmd["url"], inst, cmd.get("size"), clock=self.clock, buf=self._net, **fetch_kw)
            except DownloadError as e:
                if e.permanent or wait_ms is None:
                    raise
                self.status.set(S.FAILED, reason=e.args[0])  # "will try again"
                await asyncio.sleep_ms(self.clock.real_ms(wait_ms))
                self.status.set(S.DOWNLOADING)

    async def _keylist(self, cmd, fetch_kw):
        # Download, check and adopt a signed key list; -> False (no reset).
        from ota import keylist

        self.installer = None
        gc.collect()
        sink = keylist.KeyListSink(self.trusted, self.keys_version, self._blk)
        self.status.begin(cmd.get("version"))
        try:
            await fetch(cmd["url"], sink, cmd.get("size"), clock=self.clock, buf=self._net, **fetch_kw)
            version, digests = sink.finish()
            keylist.save(self.keys_path, version, digests)
        except Reject as e:
            self._fail(S.REJECTED, e.args[0])
            return False
        except (DownloadError, OSError) as e:
            self._fail(S.FAILED, e.args[0] if e.args and isinstance(e.args[0], str) else repr(e))
            return False
        except Exception as e:  # a bug: reported, the stored list untouched
            self._fail(S.FAILED, "internal: %r" % e)
            return False
        self.trusted, self.keys_version = digests, version
        self.status.set(S.KEYS_UPDATED, 100)
        return False

    def _fail(self, state, reason):
        if self.installer is not None:
            self.installer.release()
        if self.record.pending is not None and self.record.pending.get("stage") == "installing":
            self.record.clear_pending()
        self.status.set(state, reason=reason)

    # -- after the reboot ---------------------------------------------------------
    def after_boot(self):
        rec = self.record.pending
        running = hal.running_partition().info()[4]
        why = self.record.damaged
        if why:
            # Not a record this firmware wrote: what was in flight is
            # unknown. Said once (U03, the reason); the floor kept if it was
            # valid; a clean record replaces it. An unconfirmed new image
            # is rolled back by the bootloader at the next reset.
            self.record.damaged = None
            try:
                self.record.save()
            except OSError:
                pass
            self.status.set(S.FAILED, reason=why)
            return self.status.state
        if rec is None:
            return self.status.state
        self.status.version = rec.get("version")
        if rec.get("stage") == "installing" and running != rec.get("slot"):
            self._fail(S.FAILED, "interrupted: reset before the update was installed")
        elif running != rec.get("slot") or hal.rolled_back():
            self.record.clear_pending()
            self.status.set(S.ROLLED_BACK, reason="rolled-back: new image was not confirmed")
        else:
            # Booted the new image ("installing" here: the reset came between
            # set_boot and the record update). It must now prove itself.
            self.status.set(S.CONFIRMING, 100)
        return self.status.state

    def confirm_if_healthy(self, meter_up, cloud_ok):
        # -> True when this call confirmed the running image.
        if self.status.state != S.CONFIRMING or not (meter_up and cloud_ok):
            return False
        hal.Partition.mark_app_valid_cancel_rollback()
        # The floor rises to the confirmed image's secure_version, read from
        # the image itself (the record may predate set_boot).
        ident = running_identity(hal.running_partition())
        self.record.clear_pending(raise_min_to=ident[2] if ident else None)
        self.status.set(S.CONFIRMED, 100)
        return True

    def rollback_due(self):
        waited = time.ticks_diff(self.clock.ticks_ms(), self._boot_ms)
        return self.status.state == S.CONFIRMING and waited > self.confirm_timeout_ms
