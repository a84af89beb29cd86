"""A meter link task that fails at every start must show on the display.

The link raises its own faults (co-processor silent, meter silent) only
while it runs. If it cannot even start (here: the UART is a TCP port nobody
listens on; on a board, a driver bug that kills it at each start), the
supervisor restarts it with backoff and, before this check, the device
showed no fault and a link state of "up" for as long as it lasted (seen at
the end of the 7-day soaks: last reading 80 minutes old, faults: none).
"""

import socket

CODE = """
import asyncio, sys, hal
import faults as F
from app import app

a = app.boot()

async def main():
    asyncio.create_task(a.run())
    seen = []
    for minute in range(MINUTES):
        await asyncio.sleep_ms(hal.clock.real_ms(60_000))
        seen.append((minute + 1, F.COPROC_SILENT in a.faults.active(), a.link.status.state))
    t = a.sup.task("meter")
    print("failures", t.failures, t.in_a_row)
    for m, on, state in seen:
        print("minute", m, int(on), state)
    sys.exit(0)

asyncio.run(main())
"""


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: every connect is refused
    return port


def test_link_that_cannot_start_raises_coproc_silent(mpy, tmp_path):
    env = {"IHD_UART": f"tcp:127.0.0.1:{_closed_port()}", "IHD_CLOCK": "utc=1767225600,speed=200"}
    r = mpy.run("MINUTES = 12\n" + CODE, heap="512k", env=env, state_dir=tmp_path, timeout=120)
    lines = r.stdout.split("\n")
    fails = next(ln for ln in lines if ln.startswith("failures")).split()
    assert int(fails[1]) >= 3 and int(fails[2]) >= 3, r.stdout
    minutes = {int(m): (int(on), state) for _, m, on, state in (ln.split() for ln in lines if ln.startswith("minute"))}
    # Not before the 6 minutes the supervisor may take between attempts...
    assert all(on == 0 for m, (on, _) in minutes.items() if m <= 5), minutes
    # ...then raised, with the link's state saying so, until the end.
    assert all(on == 1 and state == "silent" for m, (on, state) in minutes.items() if m >= 8), minutes
