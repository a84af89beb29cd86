# Link supervision and dropout detection, shared by both co-processor
# protocols (meter/raven_link.py, meter/ezsp_link.py). Protocol-neutral: a
# link reports what it saw (heard(), good()/bad()/retransmitted(),
# coproc_reset(), radio(), reading()) and asks when to give up
# (is_silent()) and how long to back off (backoff_ms()); this module keeps
# the state and counters the display and the cloud read (Status) and raises
# or clears the faults in firmware/faults.py.
#
# Dropout detection follows LBNL's OpenSEG gateway: the energy implied by
# the demand reports (demand held until the next report, integrated over
# time) must match the change in summation delivered (net of received).
# A mismatch larger than what sampling and summation resolution can explain,
# or a hole in the demand reports, means readings were missed: the reading
# that reveals it carries reading.F_GAP and faults.METER_DROPOUT is raised
# until enough consecutive intervals check out again.
import time

import micropython

import faults
import hal
from meter import reading

# link states, as shown on the diagnostics screen and sent to the cloud
INIT = "init"  # opening the co-processor, not yet answering
JOINING = "joining"  # co-processor answers, meter network not up yet
UP = "up"  # readings flowing
SILENT = "silent"  # co-processor stopped answering: re-initialising
BACKOFF = "backoff"  # waiting before the next re-initialisation


class Status:
    # What the display and the cloud show about the link. Plain attributes,
    # updated in place (no allocation per frame).
    def __init__(self, protocol):
        self.protocol = protocol
        self.state = INIT
        self.frames_good = 0
        self.frames_bad = 0
        self.frames_retransmitted = 0
        self.resets = 0  # co-processor resets seen (its own or ours)
        self.reinits = 0  # re-initialisations after silence
        self.readings = 0
        self.gaps = 0  # readings flagged F_GAP
        self.lqi = None  # last LQI (EZSP) or LinkStrength % (RAVEn)
        self.rssi = None  # last RSSI in dBm where the protocol gives it
        self.last_reading_ticks = None  # hal.clock.ticks_ms() of the last reading
        self.last_rx_ticks = None  # last valid frame of any kind

    def as_dict(self):
        return {
            "protocol": self.protocol,
            "state": self.state,
            "frames_good": self.frames_good,
            "frames_bad": self.frames_bad,
            "frames_retransmitted": self.frames_retransmitted,
            "resets": self.resets,
            "reinits": self.reinits,
            "readings": self.readings,
            "gaps": self.gaps,
            "lqi": self.lqi,
            "rssi": self.rssi,
        }


REAL_MIN_MS = 500  # real ms a supervision timeout lasts at least: the
# co-processor and the UART run in real time, and at 2000x (simulation) a
# 60 s silence limit would be 30 ms, one busy moment of the host. On the
# device (1x) every limit here is longer anyway.


def elapsed(dev_t0, real_t0, ms):
    # True when ms of device time and at least min(ms, REAL_MIN_MS) of real
    # time have passed since (dev_t0 = hal.clock.ticks_ms(), real_t0 =
    # time.ticks_ms()).
    if time.ticks_diff(hal.clock.ticks_ms(), dev_t0) <= ms:
        return False
    return time.ticks_diff(time.ticks_ms(), real_t0) > (ms if ms < REAL_MIN_MS else REAL_MIN_MS)


LATE_MS = 200  # real ms a report may wait between the co-processor and its
# timestamp: socket/UART buffer, the event loop busy with a flash write or
# a collection. Only matters for readings the link stamps on arrival.


def arrival_jitter_s():
    # Device seconds by which a reading stamped on arrival (EZSP: ZCL
    # reports carry no time) may lag its report: LATE_MS of real time,
    # scaled by the clock's acceleration (a simulation at 2000x turns 20 ms
    # of scheduling delay into 40 s), and never below the clock's 1 s step.
    per = hal.clock.real_ms(1_000_000)
    speed = 1_000_000 // per if per > 0 else 1
    j = LATE_MS * speed // 1000
    return j if j > 1 else 1


class Dropout:
    # Compares the demand integral with the summation change between
    # consecutive summation readings. gap_s: longest acceptable hole between
    # demand reports; res_wh: summation resolution; rel_pct: relative slack;
    # jitter_s: how far a reading's timestamp may lie from its report's
    # real time (1 for meter-stamped readings, arrival_jitter_s() for
    # readings stamped on arrival).
    def __init__(self, gap_s=45, res_wh=1, rel_pct=2, clear_after=3, jitter_s=1):
        self.gap_s = gap_s
        self.res_wh = res_wh
        self.rel_pct = rel_pct
        self.clear_after = clear_after
        self.jitter_s = jitter_s
        self.restart()

    def restart(self):
        # Forget the baseline (after a co-processor reset or a clock jump).
        self._t = None  # time of the last demand report
        self._d = 0  # its value (W)
        self._ti = None  # integral is complete up to here
        self._ws = 0  # W*s since the last summation reading
        self._var = 0  # sum of |demand step| * its interval (W*s)
        self._steps = 0  # sum of |demand step| (W), for the timestamp jitter
        self._d0 = 0  # demand held at the last summation reading
        self._hole = False  # a demand hole since the last summation
        self._sum = None  # net summation (Wh) at the last summation reading
        self._recv = 0  # last summation received (Wh)
        self._covered = False  # demand integral spans since that reading
        # The verdict on the interval that the last summation closed waits
        # for the next demand report: a load switched on between the last
        # demand report and the summation only shows then.
        self._pend = False
        self._p_diff = 0  # summation change minus demand integral (W*s)
        self._p_tol = 0  # slack known at the summation (W*s)
        self._p_tail = 0  # s from the last demand report to the summation
        self.good_run = 0

    def shift(self, delta_s):
        # The device clock was set delta_s forward (negative: back): keep
        # the intervals of the readings already seen.
        if self._t is not None:
            self._t += delta_s
        if self._ti is not None:
            self._ti += delta_s

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def check(self, utc, demand_w, delivered_wh, received_wh, flags):
        # Returns the flags with F_GAP added when a dropout shows up: on the
        # first demand reading after a hole, or after the summation that
        # closed an interval whose energy does not match.
        if not flags & reading.F_TIME_VALID:
            return flags
        gap = False
        j = self.jitter_s
        if flags & reading.F_DEMAND:
            if self._t is not None:
                dt = utc - self._t
                if dt < 0:
                    self.restart()
                    return flags
                if dt > self.gap_s + j:
                    self._hole = True
                    gap = True
                self._integrate(utc)
                step = demand_w - self._d
                if step < 0:
                    step = -step
                self._var += step * dt
                self._steps += step
                if self._pend and self._verdict(step):
                    gap = True
            self._t = utc
            self._ti = utc
            self._d = demand_w
        # A summation sample: a reading whose report carried the summation
        # (meter/reading.py: links never repeat an old one).
        if flags & reading.F_SUMMATION:
            if self._pend and self._verdict(0):
                gap = True
            if flags & reading.F_RECEIVED:
                self._recv = received_wh
            net = delivered_wh - self._recv
            if self._ti is not None and utc >= self._ti:
                self._integrate(utc)
            prev = self._sum
            self._sum = net
            # A hole was flagged where it showed: its interval is not
            # judged again (one flag per dropout).
            if prev is not None and self._covered and not self._hole:
                # in W*s, integers only (no float boxing on the ESP32).
                # Slack: register resolution at both ends; the held demand
                # missing steps between reports (var); each step, and both
                # ends, shifted by up to the timestamp jitter.
                e = self._ws
                d0 = self._d0 if self._d0 > 0 else -self._d0
                d1 = self._d if self._d > 0 else -self._d
                tol = 2 * self.res_wh * 3600 + self._var + (e if e > 0 else -e) * self.rel_pct // 100
                self._p_tol = tol + j * (self._steps + d0 + d1)
                self._p_diff = (net - prev) * 3600 - e
                self._p_tail = utc - self._t if self._t is not None else 0
                self._pend = True
            self._ws = 0
            self._var = 0
            self._steps = 0
            self._d0 = self._d
            self._hole = False
            self._covered = self._ti is not None
        if gap:
            self.good_run = 0
            return flags | reading.F_GAP
        return flags

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _verdict(self, step):
        # Judge the pending interval, now that the demand step after its
        # summation (W) is known. True: energy went missing.
        self._pend = False
        tol = self._p_tol + step * (self._p_tail + self.jitter_s)
        diff = self._p_diff
        if diff > tol or -diff > tol:
            return True
        self.good_run += 1
        return False

    def _integrate(self, utc):
        self._ws += self._d * (utc - self._ti)
        self._ti = utc


class Supervisor:
    # silent_ms: no valid frame for this long (device time) means the
    # co-processor is silent; backoff doubles from backoff_min_ms up to
    # backoff_max_ms on each failed re-initialisation.
    def __init__(self, protocol, faults_, silent_ms=60_000, backoff_min_ms=2_000, backoff_max_ms=300_000):
        self.status = Status(protocol)
        self.faults = faults_
        self.silent_ms = silent_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self._backoff = backoff_min_ms
        self.rx_real = time.ticks_ms()  # real ticks of last_rx_ticks
        self.dropout = Dropout()

    def state(self, s):
        self.status.state = s

    def heard(self):
        self.status.last_rx_ticks = hal.clock.ticks_ms()
        self.rx_real = time.ticks_ms()

    def good(self):
        self.status.frames_good += 1
        self.status.last_rx_ticks = hal.clock.ticks_ms()
        self.rx_real = time.ticks_ms()

    def bad(self):
        self.status.frames_bad += 1

    def retransmitted(self):
        self.status.frames_retransmitted += 1

    def radio(self, lqi=None, rssi=None):
        if lqi is not None:
            self.status.lqi = lqi
        if rssi is not None:
            self.status.rssi = rssi

    def is_silent(self):
        t = self.status.last_rx_ticks
        return t is None or elapsed(t, self.rx_real, self.silent_ms)

    def silent(self):
        # The co-processor stopped answering: the caller re-initialises it.
        self.faults.set(faults.COPROC_SILENT)
        self.status.state = SILENT
        self.status.reinits += 1
        # the dropout baseline is kept: the hole this silence leaves in the
        # readings is exactly what it must flag

    def coproc_reset(self):
        # The co-processor restarted by itself (or we restarted it).
        self.faults.set(faults.COPROC_RESET)
        self.status.resets += 1
        self.status.state = JOINING

    def up(self):
        # Link established: readings can flow, faults about the link clear.
        self.status.state = UP
        self._backoff = self.backoff_min_ms
        self.faults.clear(faults.COPROC_SILENT)
        self.faults.clear(faults.COPROC_RESET)

    def backoff_ms(self):
        # Delay before the next re-initialisation; doubles on each call.
        d = self._backoff
        self._backoff = min(d * 2, self.backoff_max_ms)
        self.status.state = BACKOFF
        return d

    def clock_moved(self, delta_s):
        # The link set the device clock delta_s seconds forward.
        self.dropout.shift(delta_s)

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def reading(self, utc, demand_w, delivered_wh, received_wh, flags):
        # Every reading passes here on its way out; returns its flags.
        st = self.status
        st.readings += 1
        st.last_reading_ticks = hal.clock.ticks_ms()
        flags = self.dropout.check(utc, demand_w, delivered_wh, received_wh, flags)
        if flags & reading.F_GAP:
            st.gaps += 1
            self.faults.set(faults.METER_DROPOUT)
        elif self.dropout.good_run >= self.dropout.clear_after:
            self.faults.clear(faults.METER_DROPOUT)
        return flags
