"""The emulated supplier beyond the tariff: prepayment credit, scripted messages
and the meter's identity, shared by both co-processor emulators (EZSP:
tools/ihd/emulators/ncp_extras.py lays them out as ZCL; RAVEn: tools/ihd/emulators/raven_session.py
as MessageCluster fragments). Its own figures are the tests' oracle.

Prepayment (EZSP only: the RAVEn API has none): the balance starts at
`credit` (raw, the tariff's trailing digits) and falls by the energy the
meter delivers at the price in force (`Tariff.at`), counted per register
step. Below `low` it is low credit and emergency credit is offered; at or
below zero the emergency credit (`emergency`) is in use; when that is gone
the credit is exhausted and the supply is off.

Messages: a script of (offset s, "display", id, minutes, text) /
(offset s, "cancel", id) / (offset s, "cancel_all"), each sent once when its
time comes (minutes None: until cancelled).
"""

from __future__ import annotations

import argparse
from fractions import Fraction

CS_OK, CS_LOW, CS_EC_ENABLED, CS_EC_AVAILABLE, CS_EC_IN_USE, CS_EXHAUSTED = 0x01, 0x02, 0x04, 0x08, 0x20, 0x40


class Supplier:
    def __init__(
        self,
        credit: int | None = None,
        emergency: int = 50000,
        low: int = 20000,
        debt: int = 0,
        script=(),
        site_id: str = "1200023305967",
        serial: str = "21E5012345",
        name: str = "Demo Energy",
        ambient: bool = False,
    ):
        self.credit0 = credit  # None: not a prepayment meter
        self.emergency = emergency
        self.low = low
        self.debt = debt
        self.script = sorted(script, key=lambda s: s[0])
        self.site_id = site_id
        self.serial = serial
        self.name = name
        self.ambient = ambient  # the meter has AmbientConsumptionIndicator
        self.spent = Fraction(0)  # raw units of the tariff's currency
        self._last_wh: int | None = None
        self.message: dict | None = None  # on show: {"id", "text", "minutes", "start"}
        self.sent: list[dict] = []  # every message event, as logged

    @property
    def prepay(self) -> bool:
        return self.credit0 is not None

    # -- prepayment --------------------------------------------------------------
    def use(self, delivered_wh: int, price_raw: int) -> None:
        """The meter's register now, and the price in force: credit spent."""
        if self._last_wh is not None and delivered_wh > self._last_wh:
            self.spent += Fraction((delivered_wh - self._last_wh) * price_raw, 1000)
        self._last_wh = delivered_wh

    def state(self) -> dict:
        """Credit, emergency credit left, CreditStatus bits, supply (raw units)."""
        credit = self.credit0 - int(self.spent)
        ec_left = self.emergency if credit > 0 else max(0, self.emergency + credit)
        cs = CS_EC_ENABLED
        if credit > 0:
            cs |= CS_OK
        if credit <= self.low:
            cs |= CS_LOW
        if 0 < credit <= self.low:
            cs |= CS_EC_AVAILABLE
        if credit <= 0 < ec_left:
            cs |= CS_EC_IN_USE
        if credit <= 0 and ec_left == 0:
            cs |= CS_EXHAUSTED
        supply = 0 if cs & CS_EXHAUSTED else 2
        return {"credit": credit, "emergency": ec_left, "status": cs, "debt": self.debt, "supply": supply}

    # -- messages --------------------------------------------------------------------
    def due(self, t: float, start: int) -> list[tuple]:
        """(entry, message shown by it or None) for the script entries due
        by simulated time t (each once); the message on show follows."""
        out = []
        while self.script and start + self.script[0][0] <= t:
            ev = self.script.pop(0)
            at = start + ev[0]
            if ev[1] == "display":
                self.message = {"id": ev[2], "minutes": ev[3], "text": ev[4], "start": at}
            elif ev[1] == "cancel" and self.message and self.message["id"] == ev[2]:
                self.message = None
            elif ev[1] == "cancel_all":
                self.message = None
            self.sent.append({"t": at, "kind": "message", "what": ev[1], "id": ev[2] if len(ev) > 2 else None})
            out.append((ev, dict(self.message) if ev[1] == "display" else None))
        return out

    def showing(self, t: float) -> dict | None:
        m = self.message
        if m and m["minutes"] is not None and t >= m["start"] + 60 * m["minutes"]:
            return None
        return m


def parse_message(s: str) -> tuple:
    # OFFSET:ID:MINUTES:TEXT (MINUTES "-": until cancelled)
    parts = s.split(":", 3)
    try:
        if len(parts) != 4:
            raise ValueError
        mins = None if parts[2] == "-" else int(parts[2])
        return int(parts[0]), "display", int(parts[1]), mins, parts[3]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--message wants OFFSET:ID:MINUTES|-:TEXT, got {s!r}")


def parse_cancel(s: str) -> tuple:
    # OFFSET:ID, or OFFSET:all
    t, _, mid = s.partition(":")
    try:
        return (int(t), "cancel_all") if mid == "all" else (int(t), "cancel", int(mid))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cancel-message wants OFFSET:ID or OFFSET:all, got {s!r}")


def add_args(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("supplier (tools/ihd/emulators/supplier.py): prepayment, messages, identity")
    g.add_argument("--prepay", type=int, help="a prepayment meter with this credit (raw, the price's digits; EZSP)")
    g.add_argument("--prepay-emergency", type=int, default=50000, help="emergency credit allowance (raw)")
    g.add_argument("--prepay-low", type=int, default=20000, help="low-credit level (raw)")
    g.add_argument("--prepay-debt", type=int, default=0, help="accumulated debt (raw)")
    g.add_argument("--message", type=parse_message, action="append", default=[], help="OFFSET:ID:MINUTES|-:TEXT")
    g.add_argument("--cancel-message", type=parse_cancel, action="append", default=[], help="OFFSET:ID|all")
    g.add_argument("--ambient", action="store_true", help="the meter has AmbientConsumptionIndicator (EZSP)")


def from_args(args) -> Supplier:
    return Supplier(
        credit=getattr(args, "prepay", None),
        emergency=getattr(args, "prepay_emergency", 50000),
        low=getattr(args, "prepay_low", 20000),
        debt=getattr(args, "prepay_debt", 0),
        script=list(getattr(args, "message", [])) + list(getattr(args, "cancel_message", [])),
        ambient=getattr(args, "ambient", False),
    )
