# OTA progress and outcome, for the display, the uplink and the logs; and
# the small persistent record that survives the reboot into a new image.
#
# Status is what others read (state, percent, version, last error as a
# faults.OTA_* number and its reason code). It also raises and clears the
# OTA faults in the shared Faults table when one is given.
#
# The record (one JSON file, replaced atomically by rename) holds the
# anti-rollback floor and the update in flight:
#   {"min_sv": 3, "pending": {"slot": "ota_1", "version": "2.0.0", "sv": 3,
#    "stage": "installing" | "booting"}}
# "installing" is written before the first block, "booting" after set_boot;
# after a reboot the pair (stage, running slot) tells a rollback from an
# interrupted download from a new image awaiting confirmation.
import json
import os

import faults as F

IDLE = "idle"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
REBOOTING = "rebooting"  # verified, set_boot done; waiting for the reset
CONFIRMING = "confirming"  # new image running, not yet confirmed healthy
CONFIRMED = "confirmed"
REJECTED = "rejected"
FAILED = "failed"
ROLLED_BACK = "rolled-back"
KEYS_UPDATED = "keys-updated"  # a signed key list was adopted (ota/keylist.py)

_FAULT = {REJECTED: F.OTA_REJECTED, FAILED: F.OTA_FAILED, ROLLED_BACK: F.OTA_ROLLED_BACK}


class Status:
    def __init__(self, faults=None):
        self.faults = faults
        self.state = IDLE
        self.percent = 0
        self.version = None  # version being installed / just installed
        self.error = 0  # faults.OTA_* of the last failure, 0: none
        self.reason = None  # "<code>: <detail>" of the last failure
        self.changed = 0  # bumped on every change: cheap polling by the display

    def set(self, state, percent=None, reason=None):
        self.state = state
        if percent is not None:
            self.percent = percent
        num = _FAULT.get(state)
        if num is not None:
            self.error = num
            self.reason = reason
            if self.faults is not None:
                self.faults.set(num)
        elif state == CONFIRMED and self.faults is not None:
            for n in _FAULT.values():
                self.faults.clear(n)
        if state == DOWNLOADING and self.faults is not None:
            self.faults.clear(F.OTA_FAILED)
            self.faults.clear(F.OTA_REJECTED)
        self.changed += 1

    def begin(self, version):
        # A new update: the last one's failure is history, not a fault the
        # display and the cloud should still show while this one runs.
        self.version = version
        self.error = 0
        self.reason = None
        self.set(DOWNLOADING, 0)

    def note(self, reason):
        # A refused command: say why without changing the state or faults.
        self.reason = reason
        self.changed += 1

    def progress(self, done, total):
        p = done * 100 // total if total else 0
        if p != self.percent:
            self.percent = p
            self.changed += 1

    def as_dict(self):
        # For the uplink's status message (docs/ota.md).
        return {
            "state": self.state,
            "percent": self.percent,
            "version": self.version,
            "error": self.error,
            "reason": self.reason,
        }


def default_path():
    import hal

    sd = getattr(hal, "state_dir", None)
    return (sd() if sd else "") + "/ota.json"


# Bounds of a record this firmware writes (set_pending(): slot name, a
# version string of at most 32 bytes from ota/command.py, u32 secure versions):
# under 300 bytes. Globals, not const(): boxed on a 32-bit port, built once.
_MAX_BYTES = 1024
_U32 = 0xFFFFFFFF
_STAGES = ("installing", "booting")
_PENDING_KEYS = ("slot", "version", "sv", "stage")


def _u32(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U32


def pending_error(p):
    # -> None if p is a pending entry as set_pending() writes it, else why not.
    if not isinstance(p, dict):
        return "pending: not an object"
    for k in p:
        if k not in _PENDING_KEYS:
            return "pending: unknown field"
    slot = p.get("slot")
    if not isinstance(slot, str) or not 0 < len(slot) <= 16:
        return "pending: slot"
    v = p.get("version")
    if v is not None and (not isinstance(v, str) or len(v) > 64):
        return "pending: version"
    sv = p.get("sv")
    if sv is not None and not _u32(sv):
        return "pending: sv"
    if p.get("stage") not in _STAGES:
        return "pending: stage"
    return None


class Record:
    # min_sv and pending as last saved. A record that is not one this
    # firmware wrote (any bytes: flash damage, a bad tool) is set aside:
    # `damaged` says why (None: valid or no record), min_sv keeps its value
    # if that alone is valid, pending is None; never an exception.
    def __init__(self, path=None):
        self.path = path or default_path()
        self.min_sv = 0
        self.pending = None
        self.damaged = None
        try:
            size = os.stat(self.path)[6]
        except OSError:
            return  # none: no update was ever recorded
        self.damaged = self._load(size)

    def _load(self, size):
        # Size first (os.stat), then nesting, then JSON, then every field.
        if size > _MAX_BYTES:
            return "record-damaged: %d bytes" % size
        try:
            with open(self.path, "rb") as f:
                b = f.read(size + 1)
        except OSError:
            return "record-damaged: unreadable"
        if len(b) > _MAX_BYTES:
            return "record-damaged: over %d bytes" % _MAX_BYTES  # it grew
        from app.config import json_shape

        if json_shape(b, 3, 16):
            return "record-damaged: not a record"
        try:
            d = json.loads(b)  # a UnicodeError (not UTF-8) is a ValueError
        except ValueError:
            return "record-damaged: not JSON"
        b = None
        if not isinstance(d, dict):
            return "record-damaged: not an object"
        sv = d.get("min_sv", 0)
        if not _u32(sv):
            # the running image's own secure_version still bounds
            # downgrades (ota/install.py device_policy takes the larger)
            return "record-damaged: min_sv"
        self.min_sv = sv
        for k in d:
            if k not in ("min_sv", "pending"):
                return "record-damaged: unknown field"
        p = d.get("pending")
        if p is not None:
            why = pending_error(p)
            if why:
                return "record-damaged: " + why
            self.pending = p
        return None

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"min_sv": self.min_sv, "pending": self.pending}, f)
        os.rename(tmp, self.path)

    def set_pending(self, slot, version, sv, stage):
        self.pending = {"slot": slot, "version": version, "sv": sv, "stage": stage}
        self.save()

    def clear_pending(self, raise_min_to=None):
        if raise_min_to is not None and raise_min_to > self.min_sv:
            self.min_sv = raise_min_to
        self.pending = None
        self.save()
