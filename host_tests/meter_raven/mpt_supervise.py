# meter/supervise.py on the Unix port: OpenSEG-style dropout detection,
# backoff, silence, state and faults. The scenarios simulate a meter second
# by second (the truth) and sample it as a co-processor reports it, so the
# expected outcome (gap or no gap) is known by construction.
import time

import faults
import hal
from meter import reading, supervise

HEAP = "96k"

TV = reading.F_TIME_VALID
D = TV | reading.F_DEMAND
S = TV | reading.F_SUMMATION | reading.F_RECEIVED
T0 = 1767225600


class Meter:
    # Per-second truth: power(t) W; registers in W*s; reports demand every
    # 4-10 s (LCG-chosen) and summation every 60 s, in Wh floored to `res`.
    def __init__(self, power, res=1, seed=1):
        self.power = power
        self.res = res
        self.ws_in = 0
        self.ws_out = 0
        self.rnd = seed

    def _next_gap(self):
        self.rnd = (self.rnd * 1103515245 + 12345) & 0x7FFFFFFF
        return 4 + self.rnd % 7

    def run(self, dropout, seconds, skip=(), jump_at=None, jump_wh=0, late=0):
        # Returns the list of (t, flags) of readings flagged F_GAP. late:
        # each report is stamped up to `late` seconds after it was made
        # (arrival stamps; bursts, as a busy event loop delivers them),
        # never earlier than the previous stamp.
        gaps = []
        next_d = T0 + 3
        next_s = T0 + 30
        stamp = T0
        for t in range(T0, T0 + seconds):
            p = self.power(t)
            if late:
                self.rnd = (self.rnd * 1103515245 + 12345) & 0x7FFFFFFF
                stamp = max(stamp, t + self.rnd % (late + 1))
            else:
                stamp = t
            if t == next_s:
                if jump_at is not None and t >= jump_at:
                    self.ws_in += jump_wh * 3600
                    jump_at = None
                dl = self.ws_in // 3600 // self.res * self.res
                rc = self.ws_out // 3600 // self.res * self.res
                f = dropout.check(stamp, 0, dl, rc, S)
                if f & reading.F_GAP:
                    gaps.append((t, "S"))
                next_s += 60
            if t == next_d:
                if not (skip and skip[0] <= t < skip[1]):
                    f = dropout.check(stamp, p, 0, 0, D)
                    if f & reading.F_GAP:
                        gaps.append((t, "D"))
                next_d += self._next_gap()
            if p >= 0:
                self.ws_in += p
            else:
                self.ws_out -= p
        return gaps


def _household(t):
    # 150 W base, a 2.8 kW kettle, a 90 W fridge cycle, 8.5 kW shower,
    # switching at arbitrary seconds between reports.
    p = 150 + (t * 7919) % 11 - 5
    s = t - T0
    if (s % 1500) < 520:
        p += 90
    if 600 <= s < 817:
        p += 2800
    if 1703 <= s < 2311:
        p += 8500
    return p


def test_no_false_dropout_over_two_hours():
    d = supervise.Dropout()
    assert Meter(_household).run(d, 7200) == []


def test_no_false_dropout_with_export_and_kwh_register():
    def solar(t):
        return 400 - ((t - T0) * 3) % 5000  # import to 4.6 kW export ramps

    assert Meter(solar).run(supervise.Dropout(), 3600) == []
    # a register counting whole kWh: resolution 1000 Wh
    assert Meter(_household, res=1000).run(supervise.Dropout(res_wh=1000), 7200) == []
    # ... which a 1 Wh assumption would misread as dropouts
    assert Meter(_household, res=1000).run(supervise.Dropout(res_wh=1), 7200) != []


def test_late_arrival_stamps_within_the_jitter_are_no_gap():
    # Readings stamped on arrival, up to 40 s late (20 ms of event-loop
    # delay at 2000x): no false dropout when the detector knows the jitter
    # ... while one that assumes exact stamps flags the shower and kettle
    assert Meter(_household).run(supervise.Dropout(jitter_s=40), 7200, late=40) == []
    assert Meter(_household).run(supervise.Dropout(jitter_s=1), 7200, late=40) != []
    # a real dropout is still found through the jitter
    gaps = Meter(_household).run(supervise.Dropout(jitter_s=40), 3600, jump_at=T0 + 2000, jump_wh=200, late=40)
    assert len(gaps) == 1 and gaps[0][1] == "D" and T0 + 2010 < gaps[0][0] <= T0 + 2020, gaps
    # and so is a hole longer than gap_s + jitter
    gaps = Meter(_household).run(supervise.Dropout(jitter_s=40), 3600, skip=(T0 + 1200, T0 + 1400), late=40)
    assert [k for _, k in gaps] == ["D"], gaps


def test_arrival_jitter_follows_the_clock_speed():
    assert supervise.arrival_jitter_s() == 1  # real time: the clock's 1 s step
    hal.clock.speed = 2000
    try:
        assert supervise.arrival_jitter_s() == supervise.LATE_MS * 2
    finally:
        hal.clock.speed = 1


def test_clock_set_keeps_the_intervals():
    # 1 kW, demand every 10 s, summation every minute; the link sets the
    # clock 300 s forward after the first minute (a meter Time answer)
    d = supervise.Dropout()
    t = T0
    for k in range(0, 241, 10):
        if k == 70:
            d.shift(300)
            t += 300
        assert not d.check(t + k, 1000, 0, 0, D) & reading.F_GAP, k
        if k % 60 == 0:
            assert not d.check(t + k, 0, 1000 * k // 3600, 0, S) & reading.F_GAP, k
    assert d.good_run == 3  # intervals judged at the next demand report
    # without the shift the same jump is a hole
    d = supervise.Dropout()
    d.check(T0, 1000, 0, 0, D)
    assert d.check(T0 + 310, 1000, 0, 0, D) & reading.F_GAP


def test_hole_in_demand_reports_is_a_gap():
    gaps = Meter(_household).run(supervise.Dropout(), 3600, skip=(T0 + 1200, T0 + 1300))
    # the first demand after the hole, once (its interval is not judged again)
    assert [k for _, k in gaps] == ["D"], gaps
    assert T0 + 1300 <= gaps[0][0] <= T0 + 1310


def test_missed_energy_is_a_gap():
    # the summation register moves 200 Wh more than the demand explains
    # (e.g. readings during a kettle were lost and demand was resampled)
    # (flagged on the first demand report after that summation, which
    # shows whether a load switched on just before it)
    gaps = Meter(_household).run(supervise.Dropout(), 3600, jump_at=T0 + 2000, jump_wh=200)
    assert len(gaps) == 1 and gaps[0][1] == "D" and T0 + 2010 < gaps[0][0] <= T0 + 2020, gaps
    # a one-step difference is within the register resolution: not flagged
    assert Meter(_household).run(supervise.Dropout(), 3600, jump_at=T0 + 2000, jump_wh=1) == []


def test_time_going_back_restarts_the_baseline():
    d = supervise.Dropout()
    assert d.check(T0, 100, 0, 0, D) == D
    assert d.check(T0 + 60, 0, 10, 0, S) == S
    assert d.check(T0 - 3600, 100, 0, 0, D) == D  # clock stepped back: no gap
    assert d.check(T0 - 3500, 0, 99999, 0, S) == S  # no baseline yet
    assert d.check(T0 + 5, 100, 0, 0, 0) == 0  # without a valid time: left alone


def test_supervisor_faults_backoff_and_state():
    f = faults.Faults()
    s = supervise.Supervisor("raven", f, silent_ms=60_000)
    assert s.status.state == supervise.INIT and s.is_silent()
    assert [s.backoff_ms() for _ in range(10)] == [
        2000,
        4000,
        8000,
        16000,
        32000,
        64000,
        128000,
        256000,
        300000,
        300000,
    ]
    assert s.status.state == supervise.BACKOFF
    s.silent()
    assert f.is_active(faults.COPROC_SILENT) and s.status.state == supervise.SILENT and s.status.reinits == 1
    s.heard()
    assert not s.is_silent()
    s.status.last_rx_ticks = time.ticks_add(hal.clock.ticks_ms(), -61_000)
    # 61 s of device time in a few real ms (a 2000x simulation on a busy
    # host): not silent until a real second has passed as well
    assert not s.is_silent()
    s.rx_real = time.ticks_add(time.ticks_ms(), -1001)
    assert s.is_silent()
    s.coproc_reset()
    assert f.is_active(faults.COPROC_RESET) and s.status.resets == 1 and s.status.state == supervise.JOINING
    s.up()
    assert s.status.state == supervise.UP and f.active() == []
    assert s.backoff_ms() == 2000  # backoff starts again after the link was up
    s.good()
    s.bad()
    s.retransmitted()
    s.radio(lqi=200, rssi=-61)
    d = s.status.as_dict()
    assert (d["frames_good"], d["frames_bad"], d["frames_retransmitted"], d["lqi"], d["rssi"]) == (1, 1, 1, 200, -61)


def test_dropout_fault_raised_and_cleared():
    # 1 kW steady, demand every 10 s, summation every minute: 16.67 Wh/min.
    # At 2 min the register shows 400 Wh too much: a dropout; then three
    # clean minutes clear the fault.
    f = faults.Faults()
    s = supervise.Supervisor("raven", f)
    registers = {60: 100, 120: 500, 180: 517, 240: 533, 300: 550}
    gap_at = []
    for k in range(0, 311, 10):
        t = T0 + k
        if k in registers:
            assert not s.reading(t, 1000, registers[k], 0, S) & reading.F_GAP
        if s.reading(t, 1000, 0, 0, D) & reading.F_GAP:
            # the demand report after the summation closes the verdict
            gap_at.append(k)
            assert f.is_active(faults.METER_DROPOUT)
    assert gap_at == [120] and s.status.gaps == 1
    assert not f.is_active(faults.METER_DROPOUT)
    assert s.status.readings == 37 and s.status.last_reading_ticks is not None
