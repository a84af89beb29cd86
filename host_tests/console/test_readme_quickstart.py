"""The README's first steps as a new user types them (issue 15, Done when):
`make run SIM_ARGS="--protocol raven --speed 300"` runs, Ctrl-C stops it in
order with nothing lost, and `ihd collector console` on that run's database
shows the device, its health and a chart in headless Chromium.

Ctrl-C is typed into a real terminal: make runs on a pseudo-terminal as its
session's foreground job, and the test writes ^C (0x03) to the terminal, whose
line discipline sends SIGINT to the foreground process group. Before
tools/ihd/sim/termfg.py that group held make too, and GNU make always dies of SIGINT
(it re-raises it whatever its recipe returns): exit -2 after an orderly stop.
The only deviation from the README is RUN_OUT (default run/sim): the run goes
into the test's own folder, not the working tree."""

import fcntl
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import termios
import time

from console_helpers import ROOT, Console, loaded, wait

RUNTIMES = ()  # CPython drives make; the firmware inside runs on the default runtime


def _count(db, sql):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return c.execute(sql).fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:  # not created yet, or the table not there yet
        return 0


def test_make_run_raven_then_ctrl_c_then_the_console_shows_the_device(tmp_path, browser):
    from selenium.webdriver.common.by import By

    out = tmp_path / "run"
    db = out / "collector.sqlite"
    cmd = ["make", "-s", "run", f"RUN_OUT={out}", "SIM_ARGS=--protocol raven --speed 300"]
    err = open(tmp_path / "make.err", "w+")
    master, slave = pty.openpty()

    def on_the_terminal():  # what a login shell's job does: own session, the pty as its terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=on_the_terminal)
    os.close(slave)
    try:
        # until the collector holds readings and the device's first health report
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and p.poll() is None:
            if _count(db, "SELECT count(*) FROM health") and _count(db, "SELECT count(*) FROM readings") > 200:
                break
            time.sleep(0.5)
        assert p.poll() is None, "make run ended by itself: " + open(tmp_path / "make.err").read()[-2000:]
        os.write(master, b"\x03")  # Ctrl-C typed at the terminal
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(master)
    err.seek(0)
    log = err.read()
    last = [ln for ln in log.replace("\r", "\n").splitlines() if ln.startswith("sim: ")][-1]
    s = json.loads((out / "summary.json").read_text())
    assert s["protocol"] == "raven" and s["interrupted"] is True, s.get("protocol")
    assert s["readings_lost"] == 0 and s["crashes"] == 0 and s["readings_committed"] > 200, last
    m = re.match(r"sim: PASS: stopped by Ctrl-C; (\d+) readings committed, .* 0 lost", last)
    assert m and int(m[1]) == s["readings_committed"], last
    assert rc == 0, f"make run exited {rc} after an orderly stop: {log[-1500:]}"

    # the console on that run's database, started with the one host command
    (dev,) = sqlite3.connect(db).execute("SELECT device_id FROM devices").fetchone()
    con = Console(db, tmp_path / "token", ihd=True)
    try:
        b = browser
        b.get(con.url + "/")
        b.find_element(By.ID, "token").send_keys((tmp_path / "token").read_text().strip())
        b.find_element(By.ID, "login").click()
        wait(lambda: b.find_elements(By.ID, "fleet"), what="the fleet page")
        row = b.find_element(By.CSS_SELECTOR, f'#fleet tr[data-device="{dev}"]')
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        # the device, its firmware version from its own health report, no fault
        assert cells[0] == str(dev) and int(cells[2]) == s["readings_stored"] and cells[3] == s["version"], cells
        b.find_element(By.LINK_TEXT, str(dev)).click()
        loaded(b, f"/device/{dev}", "the device page")
        health = b.find_elements(By.CSS_SELECTOR, "#health tbody tr")
        assert health and "power-on" in health[0].text and s["version"] in health[0].text, [h.text for h in health]
        pts = b.find_element(By.CSS_SELECTOR, "#consumption polyline.demand").get_attribute("points").split()
        assert len(pts) > 10
    finally:
        con.stop()
