"""The RAVEn link against scripted sticks: silence and backoff, a stick not
joined to a meter, warnings, and a stick that restarts by itself."""

from __future__ import annotations

import json
import socket
import threading
import time

from ravenlib import ROOT, Stick

from mpy import link_heap

START = 1767225600
READ_ONLY_PREFIX = b"<Command><Name>get_"


class ScriptedStick:
    """A TCP 'stick' that sends (real_delay_s, bytes) steps, records what it
    receives with arrival times, and hangs up after the last step."""

    def __init__(self, script, answer=None):
        self.script = script
        self.answer = answer  # fn(command bytes) -> reply bytes or b""
        self.rx: list[tuple[float, bytes]] = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        conn, _ = self.srv.accept()
        t0 = time.monotonic()
        stop = threading.Event()

        def reader():
            buf = b""
            conn.settimeout(0.05)
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"</Command>" in buf:
                    cmd, _, buf = buf.partition(b"</Command>")
                    cmd += b"</Command>"
                    self.rx.append((time.monotonic() - t0, cmd))
                    if self.answer:
                        conn.sendall(self.answer(cmd))

        r = threading.Thread(target=reader, daemon=True)
        r.start()
        for delay, data in self.script:
            time.sleep(delay)
            conn.sendall(data)
        stop.set()
        r.join()
        conn.close()
        self.srv.close()

    def commands(self):
        return [c for _, c in self.rx]


def run_link(mpy, stick: ScriptedStick, speed: int):
    out = mpy.run(
        path=ROOT / "host_tests" / "meter_raven" / "run_link.py",
        args=("raven",),
        heap=link_heap(),
        env={"IHD_UART": f"tcp:127.0.0.1:{stick.port}", "IHD_CLOCK": f"utc={START},speed={speed},invalid"},
        timeout=120,
    ).stdout
    stick.t.join(10)
    lines = out.splitlines()
    readings = [tuple(int(x) for x in ln.split()[1:]) for ln in lines if ln.startswith("R ")]
    status = json.loads(next(ln[2:] for ln in lines if ln.startswith("S ")))
    info = json.loads(next(ln[2:] for ln in lines if ln.startswith("L ")))
    return readings, status, info


def test_silent_stick_backs_off_exponentially(mpy):
    # Nothing ever comes back: 8 s real at 100x = 800 s of device time.
    stick = ScriptedStick([(8.0, b"")])
    readings, status, info = run_link(mpy, stick, 100)
    assert readings == []
    cmds = stick.commands()
    assert cmds and all(c.startswith(READ_ONLY_PREFIX) for c in cmds)
    # each (re)initialisation starts with get_device_info; the pauses between
    # them (probe window + backoff 2, 4, 8 ... s, device time) double. The
    # probe window is 20 s of device time but at least 0.5 s of real time
    # (supervise.REAL_MIN_MS): 50 s at 100x.
    starts = [t * 100 for t, c in stick.rx if b"get_device_info" in c]
    assert len(starts) >= 6
    # The stick's receive times carry the host's scheduling on both ends of
    # each pause: 15 ms real (1.5 s device time) either way on a loaded host
    # (CI with 2 workers: 0.86 s for the first 2 s pause, 0.7 x 2 s less 0.54)
    waits = [b - a - 50 for a, b in zip(starts, starts[1:], strict=False)]
    for k, w in enumerate(waits[:6]):
        assert 0.7 * 2000 * 2**k / 1000 - 1.5 <= w <= 2000 * 2**k / 1000 + 8, (k, waits)
    assert waits[5] > 2 * waits[3]  # and it doubles: 32 s after 8 s
    assert status["state"] in ("backoff", "silent", "init") and "M01" in status["faults_active"]
    assert status["reinits"] == len(starts) - 1 or status["reinits"] == len(starts)


def test_not_joined_then_joined_with_warnings(mpy):
    st = Stick()

    def answer(cmd):
        if b"get_meter_list" in cmd:
            return st.meter_list([])  # no meter: not joined yet
        if b"get_device_info" in cmd:
            return st.device_info()
        if b"get_time" in cmd:
            return st.warning("Unknown command")
        return st.connection_status("Joining", 40)

    script = [
        (0.5, st.connection_status("Join: Success", 70)),
        (0.2, st.meter_list()),
        (0.2, st.connection_status("Connected", 80)),
        (0.2, st.time(START + 100)),
        (0.1, st.demand(None, 1500)),  # no meter time: stamped by the device clock
        (0.5, b""),
    ]
    stick = ScriptedStick(script, answer)
    readings, status, info = run_link(mpy, stick, 10)
    assert status["fault_counts"].get("M03") == 1 and "M03" not in status["faults_active"]
    assert status["state"] == "up" and status["lqi"] == 80
    assert info["warnings"] == 1 and info["last_warning"] == "Unknown command"
    assert info["meters"] == ["0x00135003001c2d3e"] and info["link_status"] == "Connected"
    assert info["device"]["Manufacturer"] == "Rainforest Automation, Inc."
    # the device clock was set from the TimeCluster: the reading is stamped
    assert len(readings) == 1
    utc, d, _, _, flags = readings[0]
    assert d == 1500 and flags & 1 and START + 100 <= utc <= START + 110


def test_stick_restart_is_counted_and_recovered(mpy):
    st = Stick()
    script = [(0.3, st.connection_status("Connected", 90)), (0.1, st.demand(START + 5, 100))]
    script += [(0.1, st.demand(START + 9, 120)[:70])]  # output cut by the restart
    script += [(0.2, st.connection_status(s, 60)) for s in ("Initializing", "Network Discovery", "Joining")]
    script += [(0.1, st.connection_status("Connected", 65)), (0.1, st.demand(START + 40, 130)), (0.3, b"")]
    stick = ScriptedStick(script, lambda c: b"")
    readings, status, info = run_link(mpy, stick, 10)
    assert [r[1] for r in readings] == [100, 130]
    assert status["resets"] == 1 and status["fault_counts"] == {"M02": 1}
    assert status["state"] == "up" and status["faults_active"] == [] and status["frames_bad"] == 1


def test_stick_answers_but_meter_is_silent(mpy):
    # The stick answers every probe (so it is not silent) but no reading
    # comes for 8 minutes: faults.METER_SILENT (M05), until a reading arrives.
    st = Stick()
    stick = ScriptedStick([(4.8, st.demand(START + 490, 700)), (0.3, b"")], lambda c: st.connection_status("Connected"))
    readings, status, info = run_link(mpy, stick, 100)
    assert status["fault_counts"].get("M05") == 1 and "M05" not in status["faults_active"]
    assert status["fault_counts"].get("M01") is None and status["state"] == "up"
    assert [r[1] for r in readings] == [700]
