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


class Record:
    def __init__(self, path=None):
        self.path = path or default_path()
        self.min_sv = 0
        self.pending = None
        try:
            with open(self.path) as f:
                d = json.load(f)
            self.min_sv = int(d.get("min_sv", 0))
            self.pending = d.get("pending")
        except (OSError, ValueError):
            # Missing or damaged: the running image's own secure_version
            # still bounds downgrades (ota/updater.py takes the larger).
            pass

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
