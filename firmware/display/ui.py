# The display as the app uses it: render a screen from a status snapshot,
# ask the refresh policy, refresh the panel (or not), count it all.
#
#   d = Display(open_panel())
#   kind = d.update(status, now_s)          # blocking
#   kind = await d.aupdate(status, now_s)   # asyncio: yields while busy
#   d.screen = screens.DIAG                 # switch (a full refresh when allowed)
# `now_s` is monotonic seconds (hal.clock.ticks_ms() based), see policy.py.
from display import policy, screens, status


class Display:
    def __init__(self, panel, refresh=None, screen=screens.LIVE):
        self.panel = panel
        self.policy = refresh or policy.RefreshPolicy()
        self.screen = screen
        self._drawn_screen = None  # screen on the glass, for layout changes
        self.bad_fields = 0  # snapshot fields of the wrong type, drawn as "—"
        self.last_bad = None  # name of the last such field

    def render(self, st, screen=None):
        st, bad = status.check(st)
        if bad:
            self.bad_fields += len(bad)
            self.last_bad = bad[-1]
        screens.SCREENS[screen or self.screen](self.panel, st)

    def _plan(self, status, now_s):
        self.render(status)
        d = policy.digest(self.panel.buf)
        changed = self._drawn_screen is not None and self._drawn_screen != self.screen
        return self.policy.decide(now_s, d, changed), d

    def _done(self, kind, now_s, d):
        self.policy.done(kind, now_s, d)
        if kind != policy.NONE:
            self._drawn_screen = self.screen

    def _sent(self, full0, part0):
        # What the driver really did: it forces a full refresh when the
        # controller's old image is unknown (boot, an interrupted update).
        p = self.panel
        if p.full_refreshes > full0:
            return policy.FULL
        return policy.PARTIAL if p.partial_refreshes > part0 else policy.NONE

    def update(self, status, now_s):
        kind, d = self._plan(status, now_s)
        if kind != policy.NONE:
            f0, p0 = self.panel.full_refreshes, self.panel.partial_refreshes
            self.panel.show(full=kind == policy.FULL)
            kind = self._sent(f0, p0)
        self._done(kind, now_s, d)
        return kind

    async def aupdate(self, status, now_s):
        kind, d = self._plan(status, now_s)
        if kind != policy.NONE:
            f0, p0 = self.panel.full_refreshes, self.panel.partial_refreshes
            await self.panel.ashow(full=kind == policy.FULL)
            kind = self._sent(f0, p0)
        self._done(kind, now_s, d)
        return kind

    def counts(self):
        p = self.policy
        return {
            "display_full_refreshes": p.full,
            "display_partial_refreshes": p.partial,
            "display_skipped": p.skipped,
            "display_bad_fields": self.bad_fields,
        }
