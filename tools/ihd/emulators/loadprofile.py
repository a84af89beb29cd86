"""A deterministic household electricity load profile for the co-processor emulator.

`LoadProfile(seed, solar_w=0).power_w(t)` is the household's net power in W at
UTC second `t` (negative: exporting). The same seed always gives the same
household. Components, each drawn from a per-day random generator so any
second can be evaluated without replaying the past:

* standby: 90-160 W base that drifts per quarter hour, plus +/-8 W noise;
* fridge: 85 W compressor (350 W for the first 2 s), ~35 % duty in a 20-30 min cycle;
* kettle: 2.8 kW for 3-4 min, a few times a day, mostly morning and evening;
* oven: 2.2 kW element cycling 60-120 s on/off for 40-70 min, most evenings;
* shower: 8.5 kW electric shower for 6-12 min, most mornings;
* solar (optional): up to `solar_w` of rooftop PV from 06:00 to 18:00 with passing clouds.

`Meter` integrates the profile second by second into summation delivered and
received (W*s), as a meter's register does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY = 86400


def _noise(seed: int, t: int, span: int) -> int:
    """Cheap deterministic integer noise in [-span, span] for second t."""
    x = (t * 2654435761 + seed * 40503) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    return x % (2 * span + 1) - span


@dataclass
class _Day:
    events: list[tuple[int, int, int, int]] = field(default_factory=list)  # start, end, watts, cycle_s
    fridge_phase: int = 0
    fridge_period: int = 1500
    fridge_on: int = 525
    base: list[int] = field(default_factory=list)  # per quarter hour
    clouds: list[float] = field(default_factory=list)  # per 5 minutes


class LoadProfile:
    def __init__(self, seed: int = 1, solar_w: int = 0):
        self.seed = seed
        self.solar_w = solar_w
        self._days: dict[int, _Day] = {}

    def _day(self, d: int) -> _Day:
        day = self._days.get(d)
        if day is None:
            day = self._days[d] = self._make_day(d)
            if len(self._days) > 4:
                self._days.pop(min(self._days))
        return day

    def _make_day(self, d: int) -> _Day:
        rng = random.Random(self.seed * 1_000_003 + d)
        t0 = d * DAY
        day = _Day()
        day.fridge_period = rng.randint(1200, 1800)
        day.fridge_on = int(day.fridge_period * rng.uniform(0.3, 0.4))
        day.fridge_phase = rng.randrange(day.fridge_period)
        day.base = [rng.randint(90, 160) for _ in range(96)]
        day.clouds = [rng.uniform(0.3, 1.0) for _ in range(288)]
        for hour in (7, 8, 12, 16, 19, 21):  # kettles
            if rng.random() < 0.7:
                s = t0 + hour * 3600 + rng.randrange(3600)
                day.events.append((s, s + rng.randint(180, 240), 2800, 0))
        if rng.random() < 0.85:  # shower
            s = t0 + 6 * 3600 + rng.randrange(3 * 3600)
            day.events.append((s, s + rng.randint(360, 720), 8500, 0))
        if rng.random() < 0.8:  # oven, thermostat cycling
            s = t0 + 17 * 3600 + rng.randrange(2 * 3600)
            day.events.append((s, s + rng.randint(2400, 4200), 2200, rng.randint(60, 120)))
        return day

    def power_w(self, t: int) -> int:
        d, s = divmod(t, DAY)
        day = self._day(d)
        p = day.base[s // 900] + _noise(self.seed, t, 8)
        f = (s + day.fridge_phase) % day.fridge_period
        if f < day.fridge_on:
            p += 350 if f < 2 else 85
        for start, end, watts, cycle in day.events:
            if start <= t < end and (not cycle or ((t - start) // cycle) % 2 == 0):
                p += watts
        if self.solar_w and 6 * 3600 <= s < 18 * 3600:
            sun = math.sin(math.pi * (s - 6 * 3600) / (12 * 3600))
            p -= int(self.solar_w * sun * day.clouds[s // 300])
        return p


class Meter:
    """Integrates a profile per second: the meter's own registers (W*s)."""

    def __init__(self, profile: LoadProfile, start_utc: int):
        self.profile = profile
        self.t = start_utc
        self.delivered_ws = 0
        self.received_ws = 0

    def advance_to(self, t: int) -> None:
        while self.t < t:
            p = self.profile.power_w(self.t)
            if p >= 0:
                self.delivered_ws += p
            else:
                self.received_ws -= p
            self.t += 1

    def demand_w(self) -> int:
        return self.profile.power_w(self.t)
