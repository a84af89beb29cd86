"""CPython helpers for the RAVEn tests: aioraven as the oracle, and the firmware's
parser run on the Unix port (tools/ihd/capture/capture_mpy.py) over a byte stream."""

from __future__ import annotations

import asyncio
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from aioraven.device import RAVEnBaseDevice, RAVEnWarning
from aioraven.protocols import RAVEnReaderProtocol
from aioraven.reader import RAVEnReader

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))

from ihd.emulators.loadprofile import DAY, LoadProfile, Meter  # noqa: E402  (tools/ is not a package)
from ihd.emulators.raven_xml import Stick  # noqa: E402

__all__ = ["DAY", "LoadProfile", "Meter", "Stick", "TOOLS", "ROOT"]

ZIGBEE_EPOCH = 946684800
F_TIME_VALID, F_DEMAND, F_SUMMATION, F_RECEIVED, F_GAP = 1, 2, 4, 8, 16


class _Recorder(RAVEnReader):
    """aioraven's reader, keeping every element it is fed, in order."""

    def __init__(self, loop):
        super().__init__(loop=loop)
        self.elements: list[tuple[str, dict]] = []

    def feed_element(self, data: ET.Element) -> None:
        fut = self._loop.create_future()
        self._waiters[None].append(fut)  # aioraven hands the dict to a waiter
        super().feed_element(data)
        self.elements.append((data.tag, fut.result()))


def aioraven_elements(data: bytes, chunks: list[int] | None = None):
    """Feed `data` to aioraven's RAVEnReaderProtocol (in these chunk sizes).

    Returns (elements, warnings, parse_errors): elements as (tag, raw dict)."""
    loop = asyncio.new_event_loop()
    try:
        reader = _Recorder(loop)
        proto = RAVEnReaderProtocol(reader, loop=loop)
        proto.connection_made(None)
        errors = []
        reader.set_exception = lambda exc: errors.append(exc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            i = 0
            for n in chunks or [len(data)]:
                proto.data_received(data[i : i + n])
                i += n
            if i < len(data):
                proto.data_received(data[i:])
        warns = [str(w.message) for w in caught if issubclass(w.category, RAVEnWarning)]
        return reader.elements, warns, errors
    finally:
        loop.close()


class OracleDevice(RAVEnBaseDevice):
    """aioraven's device layer (field conversion) over one raw dict."""

    def __init__(self, raw=None):
        self.raw = raw
        self.queries: list[tuple[str, dict]] = []

    async def _query(self, cmd_name, res_name=None, args=None):
        self.queries.append((cmd_name, dict(args or {})))
        return self.raw


def convert(method: str, raw: dict):
    return asyncio.run(getattr(OracleDevice(raw), method)())


def firmware_decode(mpy, data: bytes, tmp_path: Path, chunk: int = 0, seed: int = 1, heap: str = "128k"):
    """Run the firmware's RAVEn parser on the Unix port over `data`.

    Returns (readings, times, bad, other_events, counters)."""
    f = tmp_path / f"stream-{seed}.bin"
    f.write_bytes(data)
    out = mpy.run(
        path=TOOLS / "ihd" / "capture" / "capture_mpy.py", args=("raven", f, chunk, seed), heap=heap, timeout=600
    ).stdout
    readings, times, bad, events, counters = [], [], [], [], None
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "R":
            readings.append(tuple(int(x) for x in rest.split()))
        elif kind == "T":
            times.append(None if rest == "-" else int(rest))
        elif kind == "B":
            bad.append(rest)
        elif kind == "E":
            events.append(int(rest))
        elif kind == "C":
            counters = tuple(int(x) for x in rest.split())
        else:
            raise AssertionError(f"unexpected output from the firmware: {line!r}")
    return readings, times, bad, events, counters
