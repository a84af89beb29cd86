"""Serve ihd.emulators.ezsp_ncp.EzspNcp on a local TCP port from a thread.

For tests that need NCP options the emulator's command line does not offer
(EZSP version, no CBKE library, not yet joined + install code). The
one-hour end-to-end test uses ihd emulator itself.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

from ihd.emulators.ezsp_ncp import EzspNcp  # noqa: E402
from ihd.emulators.loadprofile import LoadProfile, Meter  # noqa: E402

START = 1767225600


class NcpServer:
    def __init__(self, speed: float = 20, duration: float = 120, actions=(), meter_start=None, start=START, **ncp_kw):
        # actions: (simulated offset s, callable(ncp)) run once at that time.
        # meter_start: the meter ran from this UTC second (its history
        # attributes know the days since), integrated before serving.
        self.actions = sorted(actions, key=lambda a: a[0])
        self.speed = speed
        self.duration = duration
        self.ncp_kw = ncp_kw
        self.meter_start = meter_start
        self.start = start  # simulated UTC second the run starts at
        self.ncp: EzspNcp | None = None
        self.reports: list[dict] = []
        self.polls: list[dict] = []  # the NCP's answers to the firmware's polls (EzspNcp.take_polls)
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._thread.join(self.duration / self.speed + 10)

    async def _main(self):
        done = asyncio.get_running_loop().create_future()

        early = None
        if self.meter_start is not None:
            meter = Meter(LoadProfile(1, 0), self.meter_start)
            early = EzspNcp(meter, lambda b: None, **self.ncp_kw)
            early.history.advance_to(START)
            meter.advance_to(START)

        async def handle(reader, writer):
            if early is not None:
                ncp = early
                ncp.send_bytes = writer.write
            else:
                meter = Meter(LoadProfile(1, 0), self.start)
                ncp = EzspNcp(meter, writer.write, **self.ncp_kw)
            self.ncp = ncp
            t0 = time.monotonic()

            def now():
                return self.start + (time.monotonic() - t0) * self.speed

            try:
                while now() < self.start + self.duration:
                    try:
                        data = await asyncio.wait_for(reader.read(256), 0.01)
                    except TimeoutError:
                        data = None
                    if data == b"":
                        break
                    if data:
                        ncp.feed(data)
                        self.polls += ncp.take_polls()
                    while self.actions and now() >= self.start + self.actions[0][0]:
                        self.actions.pop(0)[1](ncp)
                    ncp.poll_ash()
                    # no new report in the last 5 simulated s: what is sent
                    # must have time to arrive before the connection closes
                    if now() < self.start + self.duration - 5:
                        self.reports += [r for r in ncp.tick(now()) if r["kind"] != "withheld"]
                        self.polls += ncp.take_polls()  # tariff changes pushed
                await writer.drain()
            finally:
                writer.close()
                done.set_result(None)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await asyncio.wait_for(done, self.duration / self.speed + 30)
