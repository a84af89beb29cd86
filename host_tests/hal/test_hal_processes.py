"""HAL behaviour that involves the host: UART peer, reset, watchdog, reboots."""

import socket
import subprocess
import threading

import pytest

import mpy as mpymod

UART_ECHO = """
import hal, time
u = hal.Uart({"connect": "tcp:127.0.0.1:%d", "baud": 115200})
u.write(b"ping\\x7e\\x00")
buf = bytearray(64)
got = b""
t0 = time.ticks_ms()
while len(got) < 6 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    n = u.readinto(buf)
    if n:
        got += bytes(buf[:n])
print(got.hex())
"""


def test_uart_talks_to_host_process_over_tcp(mpy):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    seen = []

    def peer():
        c, _ = srv.accept()
        data = b""
        while len(data) < 6:
            data += c.recv(64)
        seen.append(data)
        c.sendall(b"pong\x7d\x5e")
        c.close()

    t = threading.Thread(target=peer, daemon=True)
    t.start()
    r = mpy.run(UART_ECHO % port, heap="96k")
    t.join(5)
    srv.close()
    assert seen == [b"ping\x7e\x00"]
    assert bytes.fromhex(r.stdout.strip()) == b"pong\x7d\x5e"


def test_uart_target_overridable_by_env(mpy):
    # IHD_UART wins over the board config (the simulator uses this).
    with pytest.raises(mpymod.MicroPythonError) as ei:
        mpy.run('import hal\nhal.Uart({"connect": "tcp:127.0.0.1:9"})', env={"IHD_UART": "/nonexistent/tty"})
    assert "OSError" in str(ei.value)


def test_soft_reset_exits_for_restart_and_records_cause(mpy):
    r = mpy.run("import hal\nhal.reset()", check=False)
    assert r.returncode == 75
    r = mpy.run("import hal\nprint(hal.reset_cause())\nprint(hal.reset_cause())")
    assert r.stdout.split() == ["soft", "power-on"]


def test_watchdog_kills_a_hung_firmware(mpy, tmp_path):
    code = "import hal, time\nw = hal.Watchdog(300)\nw.feed()\nwhile True:\n    pass\n"
    cmd = mpymod.command(tmp_path / "hang.py", heap="96k")
    (tmp_path / "hang.py").write_text(code)
    proc = subprocess.run(cmd, env=mpymod.env_for(mpy.state_dir), capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b"watchdog expired" in proc.stderr
    r = mpy.run("import hal\nprint(hal.reset_cause())")
    assert r.stdout.strip() == "watchdog"


def test_fed_watchdog_does_not_fire(mpy):
    code = (
        "import hal, time\nw = hal.Watchdog(300)\n"
        "for i in range(10):\n    time.sleep_ms(100)\n    w.feed()\nprint('alive')\n"
    )
    r = mpy.run(code, heap="96k")
    assert r.stdout.strip() == "alive"


def test_flash_persists_across_emulated_reboots(mpy):
    mpy.run('import hal\np = hal.partition("store")\np.writeblocks(0, b"kept", 100)')
    r = mpy.run('import hal\np = hal.partition("store")\nb = bytearray(4)\np.readblocks(0, b, 100)\nprint(bytes(b))')
    assert r.stdout.strip() == "b'kept'"


def test_flash_power_cut_from_environment(mpy):
    # IHD_FLASH_CUT arms a cut for the simulator: the 2nd program never lands.
    code = 'import hal\np = hal.partition("store")\np.writeblocks(0, b"a", 0)\np.writeblocks(0, b"b", 1)\n'
    with pytest.raises(mpymod.MicroPythonError) as ei:
        mpy.run(code, env={"IHD_FLASH_CUT": "1"})
    assert "PowerCut" in str(ei.value)
    r = mpy.run('import hal\nb = bytearray(2)\nhal.partition("store").readblocks(0, b)\nprint(bytes(b))')
    assert r.stdout.strip() == "b'a\\xff'"


PTY_READ = """
import hal, time
u = hal.Uart({"device": "/unused", "baud": 115200})
buf = bytearray(16)
assert u.readinto(buf) is None  # nothing yet: must not block
print("ready")
got = b""
t0 = time.ticks_ms()
while len(got) < 5 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
    n = u.readinto(buf)
    if n:
        got += bytes(buf[:n])
u.write(bytes(reversed(got)))
print(got)
"""


def test_uart_over_a_pty(tmp_path):
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    (tmp_path / "pty.py").write_text(PTY_READ)
    env = mpymod.env_for(tmp_path / "state", {"IHD_UART": path})
    proc = subprocess.Popen(mpymod.command(tmp_path / "pty.py", "96k"), env=env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    os.write(master, b"hello")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert out.strip() == b"b'hello'"
    assert os.read(master, 5) == b"olleh"
    os.close(master)
    os.close(slave)


def test_uart_peer_close_is_reported(mpy):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def peer():
        c, _ = srv.accept()
        c.close()

    threading.Thread(target=peer, daemon=True).start()
    code = (
        "import hal, time\n"
        f"u = hal.Uart({{'connect': 'tcp:127.0.0.1:{port}'}})\n"
        "b = bytearray(4)\n"
        "try:\n"
        "    for i in range(500):\n"
        "        u.readinto(b)\n"
        "        time.sleep_ms(10)\n"
        "    print('no error')\n"
        "except OSError as e:\n"
        "    print('closed:', e)\n"
    )
    r = mpy.run(code, heap="96k")
    srv.close()
    assert r.stdout.startswith("closed: UART peer closed")


def test_uart_pacing_holds_the_line_rate(mpy):
    # 576 bytes at 57600 baud (10 bits a byte) take at least 100 ms.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    threading.Thread(target=lambda: srv.accept()[0].recv(4096), daemon=True).start()
    code = (
        "import hal, time\n"
        f"u = hal.Uart({{'connect': 'tcp:127.0.0.1:{port}', 'baud': 57600, 'pace': True}})\n"
        "t0 = time.ticks_ms()\n"
        "u.write(bytes(576))\n"
        "print(time.ticks_diff(time.ticks_ms(), t0))\n"
    )
    r = mpy.run(code, heap="96k")
    srv.close()
    assert int(r.stdout) >= 99


def test_udp_socket_round_trip_with_host(mpy):
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    host.settimeout(10)
    port = host.getsockname()[1]
    replies = []

    def echo():
        data, addr = host.recvfrom(2048)
        host.sendto(data.upper(), addr)
        replies.append(data)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    code = (
        "import hal, time\n"
        "s = hal.udp_socket()\n"
        f"s.sendto(b'batch', hal.resolve('127.0.0.1', {port}))\n"
        "t0 = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), t0) < 5000:\n"
        "    try:\n"
        "        print(s.recv(64)); break\n"
        "    except OSError:\n"
        "        time.sleep_ms(5)\n"
    )
    r = mpy.run(code, heap="96k")
    t.join(5)
    host.close()
    assert replies == [b"batch"]
    assert r.stdout.strip() == "b'BATCH'"
