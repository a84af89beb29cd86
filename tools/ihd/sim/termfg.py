"""Run a command as the terminal's foreground job, so Ctrl-C reaches it and not make.

`make run` starts the simulator, and the README says Ctrl-C stops it. A
terminal sends Ctrl-C's SIGINT to its whole foreground process group: the
simulator drains and exits 0, but GNU make got the signal too, and make
always dies of it (it re-raises SIGINT whatever its recipe returns), so the
shell reports failure for an orderly stop. A shell's job control is the way
out: this wrapper starts the command in a process group of its own and
gives it the terminal (tcsetpgrp), so Ctrl-C reaches only the command. make
then sees its recipe exit with the command's status. Ctrl-Z stops the
command and hands the terminal back to the shell; `fg` resumes it.

Without a controlling terminal (CI, tests, pipes), or when not in the
foreground, it simply runs the command in place (exec): signals sent to the
group then reach the command directly, as before.

    python -m ihd.sim.termfg CMD [ARGS...]
"""

from __future__ import annotations

import os
import signal
import sys


def _give_terminal(fd: int, pgrp: int) -> None:
    # a process outside the foreground group that calls tcsetpgrp gets
    # SIGTTOU (and stops) unless it ignores it: what shells do
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgrp)
    except OSError:
        pass  # the terminal is gone (hang-up): nothing to hand over
    finally:
        signal.signal(signal.SIGTTOU, old)


def _controlling_terminal() -> int | None:
    """The controlling terminal, when this process is in its foreground group."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def run(argv: list[str]) -> int:
    fd = _controlling_terminal()
    if fd is None:
        os.execvp(argv[0], argv)  # no terminal of ours: nothing to take over
    own = os.getpgrp()
    pid = os.fork()
    if pid == 0:  # the command, leader of its own group, in the foreground
        try:
            os.setpgid(0, 0)
            _give_terminal(fd, os.getpgrp())
            os.close(fd)
            os.execvp(argv[0], argv)
        except OSError as e:
            print(f"termfg: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127)
    try:
        os.setpgid(pid, pid)  # both sides, as shells do: whichever runs first wins the race
    except OSError:
        pass  # the child did it (EACCES after its exec) or has already ended

    # signals sent to make's group (kill -INT, a hang-up, a service manager)
    # no longer reach the command by themselves: pass them on
    def forward(sig, _frame):
        try:
            os.killpg(pid, sig)
        except OSError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    try:
        while True:
            _, status = os.waitpid(pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                break
            # Ctrl-Z: give the terminal back and stop our group (make and us),
            # so the shell sees the job stopped; on `fg`, resume the command
            _give_terminal(fd, own)
            os.killpg(own, signal.SIGTSTP if os.WSTOPSIG(status) == signal.SIGTSTP else signal.SIGSTOP)
            _give_terminal(fd, pid)
            os.killpg(pid, signal.SIGCONT)
    finally:
        _give_terminal(fd, own)
        os.close(fd)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: python -m ihd.sim.termfg CMD [ARGS...]  (CMD as the terminal's foreground job)", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
