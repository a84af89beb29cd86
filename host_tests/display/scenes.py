# Every screen in every state, as status snapshots (docs/display.md), for
# the golden-image tests and `make previews`. Runs on MicroPython:
#   micropython scenes.py PANEL RECORD [SCENE|all] [full|partial]
# renders each scene, refreshes the panel (fully, or partially after the
# first scene) and marks the bus record
# with the scene's name; ihd panel turns the record into images.
import sys

from faults import TABLE

HOURS = [
    420,
    380,
    350,
    330,
    340,
    410,
    900,
    1650,
    1200,
    800,
    760,
    820,
    1100,
    950,
    700,
    680,
    900,
    1800,
    2400,
    2100,
    1500,
    1000,
    700,
    520,
]

FULL = {
    "demand_w": 1234,
    "today_wh": 8420,
    "price": 24.5,
    "currency": "\u00a3",
    "hourly_wh": HOURS,
    "last_reading_age_s": 4,
    "meter": {"state": "joined", "lqi": 212, "rssi": -61},
    "wifi": {"connected": True, "rssi": -58},
    "cloud": {"last_ack_age_s": 42, "pending": 3, "realtime": False},
    "clock_valid": True,
    "store": {"fill_pct": 37, "health": "ok"},
    "version": "1.4.2",
    "build": "9f3c2ab",
    "uptime_s": 3 * 86400 + 4 * 3600 + 5 * 60,
    "reset_cause": "power-on",
    "fault": None,
}


def _with(**kw):
    d = dict(FULL)
    d.update(kw)
    return d


SCENES = [
    ("live_import_kw", "live", FULL),
    (
        "live_import_w",
        "live",
        _with(
            demand_w=350, today_wh=1234, price=None, hourly_wh=[120, None, None, 90, 60, 75, 80, 300, 410, 0, 35, 350]
        ),
    ),
    (
        "live_export",
        "live",
        _with(
            demand_w=-2150,
            today_wh=5600,
            price=30,
            currency="\u20ac",
            hourly_wh=[0, 0, 0, 0, 200, 150, 90, 0, 0, 0, 0, 0],
        ),
    ),
    # the app's money fields (meter/price.py via app/report.py): cost_today
    # in minor units with the standing charge, price with two decimals
    (
        "live_tariff",
        "live",
        _with(
            today_wh=7600,
            price=27.35,
            price_tier=2,
            standing_charge=53.22,
            cost_today=261,
            cost_per_hour=34,
            currency_iso=826,
        ),
    ),
    (
        "live_tariff_usd",
        "live",
        _with(demand_w=640, today_wh=15300, price=13, currency="$", currency_iso=840, cost_today=1989, price_tier=1),
    ),
    ("live_price_cost_unknown", "live", _with(price=27.35, cost_today=None, standing_charge=None)),
    ("live_high", "live", _with(demand_w=23456, today_wh=123456, hourly_wh=[9000] * 6 + [23000] * 6)),
    ("live_stale_fault", "live", _with(demand_w=540, last_reading_age_s=900, fault=TABLE[7])),
    ("live_unknown", "live", {}),
    # a gas meter (meter/gas.py): today's gas above the chart; "—" unknown
    (
        "live_gas",
        "live",
        _with(price=27.35, cost_today=261, gas={"today_kwh": 23.456, "today_wh": 23456, "age_s": 600}),
    ),
    ("live_gas_unknown", "live", _with(fault=TABLE[7], gas={"today_kwh": None, "today_wh": None, "age_s": None})),
    ("diag_ok", "diag", _with(cloud={"last_ack_age_s": 42, "pending": 3, "realtime": True})),
    ("diag_unknown", "diag", {}),
    ("diag_two_faults", "diag", _with(fault=TABLE[8], fault_count=2, wifi={"connected": False, "rssi": None})),
]
# prepayment, supplier messages, ambient indication, support identity
# (meter/zcl_prepay.py, meter/message.py, meter/ambient.py via app/report.py)
PREPAY = {
    "credit": 1234,
    "emergency": 500,
    "debt": 0,
    "low": False,
    "ec_available": False,
    "ec_in_use": False,
    "exhausted": False,
    "supply": "on",
}


def _prepay(**kw):
    d = dict(PREPAY)
    d.update(kw)
    return d


MESSAGE = {
    "id": 7,
    "text": "Planned work on 3 May: your supply may be off 10:00-12:00.",
    "importance": 1,
    "left_min": 90,
}
IDENTITY = {"status": 0, "site_id": "1200023305967", "serial": "21E5012345", "supplier": "Demo Energy"}
SCENES += [
    ("live_prepay", "live", _with(prepay=PREPAY, cost_today=261, ambient="medium")),
    ("live_prepay_low", "live", _with(prepay=_prepay(credit=187, low=True), cost_today=261, ambient="high")),
    ("live_prepay_ec_available", "live", _with(prepay=_prepay(credit=12, low=True, ec_available=True), cost_today=95)),
    (
        "live_prepay_ec_in_use",
        "live",
        _with(prepay=_prepay(credit=-230, emergency=270, debt=1520, ec_in_use=True), cost_today=180),
    ),
    ("live_prepay_supply_off", "live", _with(prepay=_prepay(credit=-500, exhausted=True, supply="off"), demand_w=0)),
    ("live_prepay_unknown", "live", {"prepay": {}, "ambient": None, "cost_today": None}),
    ("live_prepay_usd_message", "live", _with(prepay=PREPAY, currency="$", cost_today=1989, message=MESSAGE)),
    ("live_message", "live", _with(cost_today=261, ambient="high", message=MESSAGE)),
    (
        "live_message_long",
        "live",
        _with(ambient="low", message={"id": 8, "text": "?" * 7 + " " + "W" * 70 + "\u2026", "left_min": None}),
    ),
    ("live_ambient_low", "live", _with(ambient="low")),
    ("live_ambient_unknown", "live", _with(ambient=None)),
    ("diag_identity", "diag", _with(identity=IDENTITY)),
    ("diag_identity_raven", "diag", _with(identity={"meter_mac": "0x00135003001c2d3e"}, fault=TABLE[2])),
    ("diag_identity_unknown", "diag", _with(identity={})),
]
for row in TABLE:
    SCENES.append(("diag_fault_" + row[1], "diag", _with(fault=row)))

# the history screen (meter/history.py figures(): oldest first, the last
# one still running; None unknown)
DAYS = [9120, 8420, 10050, 7600, 12480, 15020, 8810, 9230, 4100]
HISTORY = {
    "days": DAYS,
    "days_cost": [303, 284, 328, 261, 395, 464, 294, 305, 165],
    "weeks": [61200, 58800, 66400, 70150, 63800, 21350],
    "weeks_cost": [2032, 1961, 2189, 2301, 2117, 757],
    "months": [265000, 248000, 251000, 232000, 221000, 198000, 187000]
    + [192000, 205000, 226000, 247000, 262000, 271000, 61000],
    "months_cost": [None] * 12 + [7790, 1880],
    "weekday": 2,
    "month": 6,
}
SCENES += [
    ("history", "history", _with(history=HISTORY)),
    (
        # a new display: 3 days of its own, the meter's months (no cost)
        "history_new_display",
        "history",
        _with(
            history={
                "days": [None] * 5 + [7600, 12480, 15020, 4100],
                "days_cost": [None] * 6 + [464, 294, 165],
                "weeks": [None] * 5 + [21350],
                "weeks_cost": [None] * 6,
                "months": [None] * 4 + [232000, 221000, 198000, 187000, 192000, 205000, 226000, 247000, 262000, 61000],
                "months_cost": [None] * 14,
                "weekday": 2,
                "month": 6,
            }
        ),
    ),
    ("history_unknown", "history", {}),
    ("history_lost_fault", "history", _with(history=None, fault=[r for r in TABLE if r[1] == "S04"][0])),
]


def main():
    # argv: PANEL RECORD [SCENE|all] [full|partial]
    import gc

    from busrec import Recorder

    from display import open_panel, screens

    panel, record = sys.argv[1], sys.argv[2]
    only = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "all" else None
    partial = len(sys.argv) > 4 and sys.argv[4] == "partial"
    rec = Recorder(record)
    p = open_panel(panel)
    first = True
    for name, screen, st in SCENES:
        if only and name != only:
            continue
        screens.SCREENS[screen](p, st)
        p.show(full=first or not partial)
        first = False
        rec.mark(name)
        gc.collect()
    rec.close()


if __name__ == "__main__":
    main()
