# The one table of fault codes, shared by the display, the logs and the cloud.
#
# Each fault has a number (sent to the cloud), a short code (shown on the
# diagnostics screen, quoted to support) and one plain-language sentence.
# Order is priority: when several faults are active the display shows the
# first in this table, because it is the one to fix first (a missing config
# explains a dead uplink, a silent radio module explains missing readings).
# docs/faults.md lists the same table; a host test keeps the two in step.
from micropython import const

CONFIG_MISSING = const(1)
CONFIG_BAD = const(2)
FLASH_FAIL = const(42)
COPROC_SILENT = const(10)
COPROC_RESET = const(11)
NO_CBKE = const(13)
NOT_JOINED = const(12)
METER_SILENT = const(14)
WIFI_DOWN = const(20)
CLOUD_AUTH = const(22)
CLOUD_UNREACHABLE = const(21)
CLOCK_INVALID = const(30)
STORE_CORRUPT = const(40)
STORE_BACKLOG = const(41)
HISTORY_LOST = const(43)
METER_DROPOUT = const(15)
OTA_ROLLED_BACK = const(51)
OTA_REJECTED = const(50)
OTA_FAILED = const(52)
LOW_MEMORY = const(60)
WATCHDOG_RESET = const(61)

# (number, code, sentence), highest priority first.
TABLE = (
    (CONFIG_MISSING, "C01", "Not set up yet: run the provisioning tool."),
    (CONFIG_BAD, "C02", "Settings are damaged: provision this display again."),
    (FLASH_FAIL, "S03", "Storage chip is failing: this display needs replacing."),
    (COPROC_SILENT, "M01", "ZigBee radio module not answering: restarting it."),
    (COPROC_RESET, "M02", "ZigBee radio module restarted: reconnecting to meter."),
    (NO_CBKE, "M04", "Radio firmware lacks Smart Energy key exchange."),
    (NOT_JOINED, "M03", "Not paired with the meter: register the install code."),
    (METER_SILENT, "M05", "Paired, but no reading from the meter for 5 minutes."),
    (WIFI_DOWN, "N01", "No Wi-Fi: check the router is on and in range."),
    (CLOUD_AUTH, "N03", "Cloud out of step with this display: resyncing."),
    (CLOUD_UNREACHABLE, "N02", "Cloud not answering: readings kept safe, sent later."),
    (CLOCK_INVALID, "T01", "Clock not set yet: waiting for the meter's time."),
    (STORE_CORRUPT, "S01", "Damaged stored readings set aside; new ones are safe."),
    (STORE_BACKLOG, "S02", "Storage nearly full of unsent readings: oldest at risk."),
    (METER_DROPOUT, "M06", "Readings missed: energy used does not match demand."),
    (HISTORY_LOST, "S04", "Stored history was damaged: past days start again."),
    (OTA_ROLLED_BACK, "U02", "New software failed its checks: old version restored."),
    (OTA_REJECTED, "U01", "Update refused: not signed by your energy supplier."),
    (OTA_FAILED, "U03", "Update download failed: will try again."),
    (LOW_MEMORY, "D01", "Ran out of memory and restarted itself."),
    (WATCHDOG_RESET, "D02", "Froze and was restarted by its watchdog."),
)


class Faults:
    # Active faults plus how often each was raised since boot. No allocation
    # when a fault already active is raised again (called from hot paths).
    def __init__(self):
        self._active = 0  # bit i set: TABLE[i] active
        self.counts = bytearray(len(TABLE))

    @staticmethod
    def _index(num):
        for i, row in enumerate(TABLE):
            if row[0] == num:
                return i
        raise ValueError("unknown fault %d" % num)

    def set(self, num):
        i = self._index(num)
        if not self._active & (1 << i):
            self._active |= 1 << i
            if self.counts[i] < 255:
                self.counts[i] += 1

    def clear(self, num):
        self._active &= ~(1 << self._index(num))

    def is_active(self, num):
        return bool(self._active & (1 << self._index(num)))

    def active(self):
        # Numbers of the active faults, highest priority first.
        return [TABLE[i][0] for i in range(len(TABLE)) if self._active & (1 << i)]

    def current(self):
        # The row (number, code, sentence) to show, or None when all is well.
        for i in range(len(TABLE)):
            if self._active & (1 << i):
                return TABLE[i]
        return None


def describe(num):
    return TABLE[Faults._index(num)]
