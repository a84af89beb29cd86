# Refresh policy: when the e-ink panel may refresh, and how.
#
# Panel makers' rules for these glasses: a full (flashing) refresh clears
# ghosting and must happen at least every 24 h, but wears the panel and
# annoys people, so no more often than every 180 s; between fulls, changed
# figures use partial (differential) refreshes; nothing visible changed ->
# no refresh at all. "Visible" is judged on the rendered frame itself (a
# SHA-1 of the framebuffer), so a status change that draws the same pixels
# costs nothing. Time is monotonic seconds from the caller (hal.clock
# ticks), never wall time, which may be invalid or jump.
import hashlib

NONE = 0
PARTIAL = 1
FULL = 2

MIN_FULL_S = 180
MAX_FULL_S = 86400
PARTIALS_PER_FULL = 120  # ghosting builds up: a full about every 20 min at 10 s updates


def digest(buf):
    return hashlib.sha1(buf).digest()


class RefreshPolicy:
    def __init__(self, min_full_s=MIN_FULL_S, max_full_s=MAX_FULL_S, partials_per_full=PARTIALS_PER_FULL):
        self.min_full_s = min_full_s
        self.max_full_s = max_full_s
        self.partials_per_full = partials_per_full
        self.last_full = None  # monotonic s of the last full refresh
        self.shown = None  # digest of the frame on the glass
        self.since_full = 0  # partial refreshes since the last full
        self.full = 0
        self.partial = 0
        self.skipped = 0
        self._prev = None
        self._mono = 0

    def _clock(self, now_s):
        # Seconds since the first call, never going back: ticks_ms()//1000
        # wraps (about every 12 days on MicroPython), wall clocks jump.
        prev = self._prev
        self._prev = now_s
        if prev is not None and now_s > prev:
            self._mono += now_s - prev
        return self._mono

    def decide(self, now_s, frame_digest, layout_changed=False):
        # -> NONE, PARTIAL or FULL for a frame with this digest.
        now = self._clock(now_s)
        if self.last_full is None:
            return FULL  # glass state unknown after boot
        age = now - self.last_full
        if age >= self.max_full_s:
            return FULL  # the 24 h rule holds even for an unchanged frame
        if frame_digest == self.shown:
            return NONE
        if age >= self.min_full_s and (layout_changed or self.since_full >= self.partials_per_full):
            return FULL
        return PARTIAL

    def done(self, kind, now_s, frame_digest):
        # Record the outcome of decide() once the panel has refreshed.
        if kind == NONE:
            self.skipped += 1
            return
        self.shown = frame_digest
        if kind == FULL:
            self.full += 1
            self.last_full = self._clock(now_s)
            self.since_full = 0
        else:
            self.partial += 1
            self.since_full += 1
