"""ihd/sim/termfg.py, the job control behind `make run`'s Ctrl-C: on a terminal
the command gets a process group of its own in the foreground (so ^C reaches
it and not make), the terminal is handed back afterwards, the exit status
passes through, and signals sent to the caller's group are passed on."""

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time

RUNTIMES = ()  # CPython only: a host tool
TERMFG = ("-m", "ihd.sim.termfg")
# the command reports whether it holds the terminal, then waits for a signal
PROBE = (
    "import os, signal, sys, time\n"
    "fd = os.open('/dev/tty', os.O_RDWR)\n"
    "print('own-group' if os.tcgetpgrp(fd) == os.getpgrp() != os.getsid(0) else 'shared-group', flush=True)\n"
    "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(9))\n"
    "time.sleep(30); sys.exit(3)\n"
)


def _on_terminal(cmd, out):
    master, slave = pty.openpty()

    def session():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, stdin=slave, stdout=out, stderr=out, preexec_fn=session)
    os.close(slave)
    return p, master


def _wait_for(path, text):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path.read_text()!r}")


def test_ctrl_c_reaches_the_command_alone_and_its_status_is_returned(tmp_path):
    log = tmp_path / "out"
    with open(log, "w") as out:
        p, master = _on_terminal([sys.executable, *TERMFG, sys.executable, "-c", PROBE], out)
        try:
            _wait_for(log, "own-group")  # the command is the terminal's foreground group, not the session's
            os.write(master, b"\x03")
            assert p.wait(timeout=20) == 7  # the command's own exit, not a death by SIGINT
        finally:
            p.kill()
            os.close(master)


def test_without_the_wrapper_ctrl_c_kills_the_caller_too(tmp_path):
    # the test's own control: the same probe run in place is in the session's
    # group, so ^C also reaches its parent (make, in `make run`)
    log = tmp_path / "out"
    with open(log, "w") as out:
        p, master = _on_terminal([sys.executable, "-c", PROBE], out)
        try:
            _wait_for(log, "shared-group")
        finally:
            p.kill()
            p.wait()
            os.close(master)


def test_a_signal_to_the_callers_group_is_passed_on(tmp_path):
    log = tmp_path / "out"
    with open(log, "w") as out:
        p, master = _on_terminal([sys.executable, *TERMFG, sys.executable, "-c", PROBE], out)
        try:
            _wait_for(log, "own-group")
            os.killpg(p.pid, signal.SIGTERM)  # e.g. a service manager stopping make
            assert p.wait(timeout=20) == 9
        finally:
            p.kill()
            os.close(master)


def test_without_a_terminal_it_runs_the_command_in_place(tmp_path):
    r = subprocess.run(
        [sys.executable, *TERMFG, sys.executable, "-c", "import sys; sys.exit(5)"], stdin=subprocess.DEVNULL
    )
    assert r.returncode == 5
    r = subprocess.run([sys.executable, *TERMFG], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
