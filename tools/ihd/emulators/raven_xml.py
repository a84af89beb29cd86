"""RAVEn XML API fragments as a Rainforest RAVEn or EMU-2 stick sends them.

aioraven (the third-party RAVEn library used as our oracle) can parse these
fragments but has no function to build them, so they are built here and
host_tests/meter_raven checks every kind against aioraven's parser.

Two styles, after captures published for each device:
* "raven": CRLF line endings, two-space indent, 32-bit Demand, 32-bit summations;
* "emu2": 24-bit Demand (6 hex digits), 64-bit summations (16 digits).
`eol` overrides the line ending ("" sends a fragment as one line, as some
firmware does). Values are two's complement of the field's width.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

ZIGBEE_EPOCH = 946684800
DEVICE_MAC = "0xd8d5b9000000a1b2"
METER_MAC = "0x00135003001c2d3e"
NO_TIME = 0xFFFFFFFF


def hexw(value: int, digits: int) -> str:
    """`value` as 0x + `digits` lowercase hex digits, two's complement."""
    bits = digits * 4
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise ValueError(f"{value} does not fit {bits} bits")
    return "0x" + format(value & ((1 << bits) - 1), f"0{digits}x")


def fragment(tag: str, fields: list[tuple[str, str]], eol: str = "\r\n") -> bytes:
    ind = "  " if eol else ""
    body = "".join(f"{ind}<{k}>{v}</{k}>{eol}" for k, v in fields)
    return f"<{tag}>{eol}{body}</{tag}>{eol}".encode("cp1252")


def _ts(utc: int | None) -> str:
    return hexw(NO_TIME if utc is None else utc - ZIGBEE_EPOCH, 8)


class Stick:
    """Fragment builder for one stick/meter pair with fixed scaling."""

    def __init__(
        self,
        style: str = "raven",
        eol: str | None = None,
        demand_mult: int = 1,
        demand_div: int = 1000,
        summation_mult: int = 1,
        summation_div: int = 1000,
    ):
        self.style = style
        self.eol = "\r\n" if eol is None else eol
        self.demand_digits = 6 if style == "emu2" else 8
        self.summation_digits = 16 if style == "emu2" else 8
        self.demand_mult, self.demand_div = demand_mult, demand_div
        self.summation_mult, self.summation_div = summation_mult, summation_div

    def _common(self, utc: int | None) -> list[tuple[str, str]]:
        return [("DeviceMacId", DEVICE_MAC), ("MeterMacId", METER_MAC), ("TimeStamp", _ts(utc))]

    def _fmt(self, mult: int, div: int, right: int = 3) -> list[tuple[str, str]]:
        return [
            ("Multiplier", hexw(mult, 8)),
            ("Divisor", hexw(div, 8)),
            ("DigitsRight", hexw(right, 2)),
            ("DigitsLeft", hexw(6, 2)),
            ("SuppressLeadingZero", "Y"),
        ]

    def demand_raw(self, watts: int) -> int:
        """Raw Demand for `watts` (kW = raw * mult / div), rounded to nearest."""
        return round(watts * self.demand_div / (1000 * self.demand_mult))

    def summation_raw(self, wh: int) -> int:
        return wh * self.summation_div // (1000 * self.summation_mult)

    def demand(self, utc: int | None, raw: int) -> bytes:
        f = self._common(utc) + [("Demand", hexw(raw, self.demand_digits))]
        return fragment("InstantaneousDemand", f + self._fmt(self.demand_mult, self.demand_div), self.eol)

    def summation(self, utc: int | None, raw_delivered: int, raw_received: int) -> bytes:
        d = self.summation_digits
        f = self._common(utc) + [
            ("SummationDelivered", hexw(raw_delivered, d)),
            ("SummationReceived", hexw(raw_received, d)),
        ]
        return fragment(
            "CurrentSummationDelivered", f + self._fmt(self.summation_mult, self.summation_div, 1), self.eol
        )

    def time(self, utc: int | None, local: int | None = None) -> bytes:
        f = [("DeviceMacId", DEVICE_MAC), ("MeterMacId", METER_MAC), ("UTCTime", _ts(utc))]
        f.append(("LocalTime", _ts(local if local is not None else utc)))
        return fragment("TimeCluster", f, self.eol)

    def connection_status(self, status: str, link: int = 100, description: str = "") -> bytes:
        f = [
            ("DeviceMacId", DEVICE_MAC),
            ("MeterMacId", METER_MAC),
            ("Status", status),
            ("Description", description or status),
            ("StatusCode", "0x00"),
            ("ExtPanId", "0x00135003001c2d3e"),
            ("Channel", "20"),
            ("ShortAddr", "0x3e2a"),
            ("LinkStrength", hexw(link, 2)),
        ]
        return fragment("ConnectionStatus", f, self.eol)

    def device_info(self) -> bytes:
        f = [
            ("DeviceMacId", DEVICE_MAC),
            ("InstallCode", "0x3f2e1d0c4b5a6978"),
            ("LinkKey", "0x8bd49e24f9e3c1e5b1e49f0de2c83ab7"),
            ("FWVersion", "2.0.0 (7400)"),
            ("HWVersion", "1.2.3"),
            ("ImageType", "0x1301"),
            ("Manufacturer", "Rainforest Automation, Inc."),
            ("ModelId", "Z105-2-EMU2-LEDD_JM"),
            ("DateCode", "2013103023220630"),
        ]
        return fragment("DeviceInfo", f, self.eol)

    def meter_list(self, meters: list[str] | None = None) -> bytes:
        ms = [METER_MAC] if meters is None else meters
        return fragment("MeterList", [("DeviceMacId", DEVICE_MAC)] + [("MeterMacId", m) for m in ms], self.eol)

    def price(self, utc: int | None, price: int, trailing: int, currency: int = 826, tier: int = 1) -> bytes:
        f = self._common(utc) + [
            ("Price", hexw(price, 8)),
            ("Currency", hexw(currency, 4)),
            ("TrailingDigits", hexw(trailing, 2)),
            ("Tier", hexw(tier, 2)),
            ("RateLabel", "Standard"),
        ]
        return fragment("PriceCluster", f, self.eol)

    def message(self, utc: int | None, mid: int | None, text: str, queue: str = "Active") -> bytes:
        """MessageCluster: the supplier's message (Queue "Cancel Pending": cancelled;
        an empty Text and no Id: none on show). Never asks for confirmation."""
        f = self._common(utc)
        if mid is not None:
            f.append(("Id", hexw(mid, 8)))
        f += [("Text", escape(text)), ("ConfirmationRequired", "N"), ("Confirmed", "N"), ("Queue", queue)]
        return fragment("MessageCluster", f, self.eol)

    def warning(self, text: str = "Unknown command") -> bytes:
        return fragment("Warning", [("Text", text)], self.eol)
