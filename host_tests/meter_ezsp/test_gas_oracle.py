"""Gas over EZSP on MicroPython, with zigpy as the oracle on the bytes (issue 14 item 2).

* Discovery: Metering frames from two endpoints of one ESI (electricity and
  a mirrored gas meter), in either order, serialised by zigpy with the
  Metering cluster's own attribute types and its MeteringDeviceType enum:
  every electricity reading is the electricity meter's, the gas meter is
  found by its device type and its litres never become Wh; other kinds
  (water) are ignored; mirrored electricity is electricity.
* Conversion: the Price cluster's ConversionFactor / CalorificValue with
  their trailing digits (SE 1.1+: 0x0302-0x0306; zigpy defines no Price
  attributes, so the records are laid out here with zigpy's types), and
  today's gas in Wh exact against Fraction arithmetic (GB: kWh = m3 x
  1.02264 x CV / 3.6).
"""

from __future__ import annotations

import random
from fractions import Fraction

import zigpy.types as zt
from zigpy.zcl import foundation as f
from zigpy.zcl.clusters.smartenergy import Metering

M = Metering
DT = M.MeteringDeviceType
U = M.MeteringUnitofMeasure
ESI = 0x0000
ELEC_EP, GAS_EP, WATER_EP = 9, 2, 3


def tv(attr, value):
    typ = M.attributes[attr].type
    return f.TypeValue(f.DataType.from_python_type(typ).type_id, typ(value))


def report(tsn, values) -> bytes:
    hdr = f.ZCLHeader.general(tsn, f.GeneralCommand.Report_Attributes, direction=f.Direction.Server_to_Client)
    recs = [f.Attribute(a, tv(a, v)) for a, v in values]
    return (
        hdr.serialize()
        + f.GENERAL_COMMANDS[f.GeneralCommand.Report_Attributes].schema(attribute_reports=recs).serialize()
    )


def read_rsp(tsn, recs) -> bytes:
    hdr = f.ZCLHeader.general(tsn, f.GeneralCommand.Read_Attributes_rsp, direction=f.Direction.Server_to_Client)
    schema = f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes_rsp].schema
    return hdr.serialize() + schema(status_records=recs).serialize()


def setup(tsn, unit, mult, div, devtype) -> bytes:
    vals = [(0x0300, unit), (0x0301, mult), (0x0302, div), (0x0303, 0x2B), (0x0306, devtype)]
    return read_rsp(tsn, [f.ReadAttributeRecord(a, f.Status.SUCCESS, tv(a, v)) for a, v in vals])


def price_rsp(tsn, cf, cf_digits, cv, cv_unit, cv_digits) -> bytes:
    # Price 0x0302 ConversionFactor uint32, 0x0303 its trailing digit map8
    # (bits 4-7), 0x0304 CalorificValue uint32, 0x0305 CalorificValueUnit
    # enum8 (1 MJ/m3), 0x0306 its trailing digit map8
    recs = [
        f.ReadAttributeRecord(0x0302, f.Status.SUCCESS, f.TypeValue(f.DataType.uint32.type_id, zt.uint32_t(cf))),
        f.ReadAttributeRecord(
            0x0303, f.Status.SUCCESS, f.TypeValue(f.DataType.map8.type_id, zt.bitmap8(cf_digits << 4))
        ),
        f.ReadAttributeRecord(0x0304, f.Status.SUCCESS, f.TypeValue(f.DataType.uint32.type_id, zt.uint32_t(cv))),
        f.ReadAttributeRecord(0x0305, f.Status.SUCCESS, f.TypeValue(f.DataType.enum8.type_id, zt.enum8(cv_unit))),
        f.ReadAttributeRecord(
            0x0306, f.Status.SUCCESS, f.TypeValue(f.DataType.map8.type_id, zt.bitmap8(cv_digits << 4))
        ),
    ]
    return read_rsp(tsn, recs)


LINK = """
import faults
from meter import ezsp_link
out = []
link = ezsp_link.EzspLink(None, lambda *r: out.append(r), faults.Faults())
for cl, ep, h in FRAMES:
    d = bytes.fromhex(h)
    link._incoming(cl, ep, 0, 200, -50, d, 0, len(d))
print("E", [(r[1], r[2], r[4] & 0x20) for r in out])
g = link.gas.gas
print("L", (link.meter_ep, link.gas.probe, link.gas.skip))
print("G", None if g is None else (g.ep, g.register, g.readings, g.conv))
"""


def run_link(mpy, frames):
    code = LINK.replace("FRAMES", repr([(c, ep, b.hex()) for c, ep, b in frames]))
    lines = mpy.run(code, heap="160k").stdout.split("\n")
    return {ln[0]: eval(ln[2:]) for ln in lines if ln[:2] in ("E ", "L ", "G ")}


def test_a_gas_meter_that_speaks_first_is_never_taken_for_electricity(mpy):
    # On main the link took the first Metering endpoint: 12,345 l of gas
    # became a 12,345 Wh electricity register (litres shown as kWh).
    frames = [
        (0x0702, GAS_EP, report(1, [(0x0000, 12345)])),  # gas: 12.345 m3, before anything else
        (0x0702, ELEC_EP, report(2, [(0x0400, 1500)])),  # electricity demand, 1.5 kW
        (
            0x0702,
            GAS_EP,
            setup(3, U.Cubic_Meter_and_Cubic_Meter_per_Hour_binary, 1, 1000, DT.Mirrored_Gas_Metering),
        ),  # answer to the setup read
        (0x0702, ELEC_EP, setup(4, U.Kwh_and_Kwh_binary, 1, 1000, DT.Electric_Metering)),  # answer to the probe
        (0x0702, ELEC_EP, report(5, [(0x0000, 777000), (0x0001, 0)])),
        (0x0702, GAS_EP, report(6, [(0x0000, 12400)])),
    ]
    r = run_link(mpy, frames)
    assert r["E"] == [(1500, 0, 0), (0, 777000, 0)]  # W and Wh, the electricity meter's only
    assert r["L"][0] == ELEC_EP
    g = r["G"]
    assert g[0] == GAS_EP and g[1] == 12400 and g[2] == 2  # litres, both gas reports


def test_electricity_first_then_the_gas_meter_is_found_by_probe(mpy):
    frames = [
        (0x0702, ELEC_EP, setup(1, U.Kwh_and_Kwh_binary, 1, 1000, DT.Electric_Metering)),
        (0x0702, ELEC_EP, report(2, [(0x0400, 420)])),
        (0x0702, GAS_EP, report(3, [(0x0000, 5000)])),  # unknown endpoint: held, probed
    ]
    r = run_link(mpy, frames)
    assert r["E"] == [(420, 0, 0)] and r["L"][1] == (0 << 8 | GAS_EP) and r["G"] is None
    frames.append((0x0702, GAS_EP, setup(4, U.Cubic_Meter_and_Cubic_Meter_per_Hour_binary, 1, 1000, DT.Gas_Metering)))
    frames.append((0x0702, GAS_EP, report(5, [(0x0000, 5100)])))
    frames.append((0x0702, ELEC_EP, report(6, [(0x0400, 430)])))
    r = run_link(mpy, frames)
    assert r["E"] == [(420, 0, 0), (430, 0, 0)]
    assert r["G"][:3] == (GAS_EP, 5100, 2)  # the held report and the next


def test_water_is_ignored_and_mirrored_electricity_is_electricity(mpy):
    frames = [
        (
            0x0702,
            WATER_EP,
            setup(1, U.Cubic_Meter_and_Cubic_Meter_per_Hour_binary, 1, 1000, DT.Water_Metering),
        ),  # speaks first
        (0x0702, WATER_EP, report(2, [(0x0000, 999)])),
        (0x0702, ELEC_EP, setup(3, U.Kwh_and_Kwh_binary, 1, 1000, DT.Mirrored_Electric_Metering)),
        (0x0702, ELEC_EP, report(4, [(0x0400, 250)])),
        (0x0702, WATER_EP, report(5, [(0x0000, 1000)])),
    ]
    r = run_link(mpy, frames)
    assert r["E"] == [(250, 0, 0)] and r["L"][0] == ELEC_EP and r["G"] is None
    assert (0 << 8 | WATER_EP) in r["L"][2]


def test_device_type_classes_match_zigpy(mpy):
    # every value of zigpy's enum: electricity, gas, or neither
    out = mpy.run("from meter import gas\nprint([gas.kind_of(t) for t in range(256)])\n").stdout
    kinds = eval(out)
    for v in DT:
        name = v.name
        want = 1 if "Electric" in name and "EUMD" not in name else 2 if "Gas" in name else 3
        assert kinds[int(v)] == want, name
    assert kinds[0x7F] == 1 and kinds[0x80] == 2 and kinds[0x81] == 3  # mirrored electric, gas; water


CONVERT = """
from meter import gas, localtime, zcl
class C:
    def now(self): return 0
    def valid(self): return True
T = [0]
for unit, h, regs in CASES:
    g = gas.Gas(zcl.Meter(None, C()), 0, 2, localtime.Zone(), lambda: T[0])
    g.meter.unit = unit
    d = bytes.fromhex(h)
    g.price_frame(d, 0, len(d))
    for t_s, reg in regs:
        g.reading(t_s, 0, reg, 0, 5)  # summation, time valid
    print("W", g.today_wh(), g.figures()["today_l"])
"""


def test_conversion_to_kwh_is_exact(mpy):
    rng = random.Random(14)
    day = 86400 * 1000  # device seconds of a UTC midnight
    cases, want = [], []
    # GB: 1.02264 (5 digits), CV 39.5 MJ/m3 (1 digit); then random factors
    factors = [(102264, 5, 395, 1)] + [
        (rng.randrange(1, 1 << 32), rng.randrange(0, 9), rng.randrange(1, 1 << 32), rng.randrange(0, 9))
        for _ in range(40)
    ]
    for cf, cfd, cv, cvd in factors:
        start = rng.randrange(0, 1 << 40)
        used = rng.choice([0, 1, 999, 12345, rng.randrange(1 << 20), rng.randrange(1 << 30)])
        regs = [(day - 1800, start - 7), (day + 5, start), (day + 3600, start + used // 2), (day + 7200, start + used)]
        cases.append((0x01, price_rsp(1, cf, cfd, cv, 1, cvd).hex(), regs))
        x = Fraction(used * cf * cv, 10 ** (cfd + cvd)) / Fraction(36, 10)  # l x CF x CV (MJ/m3) / 3.6 = Wh
        want.append((int(x + Fraction(1, 2)), used))
    # kWh meter: no conversion; a boot mid-day: unknown; MJ/kg: unknown
    cases.append((0x00, price_rsp(1, 1, 0, 1, 1, 0).hex(), [(day - 10, 5), (day + 10, 1000), (day + 20, 3000)]))
    want.append((2000, None))
    cases.append((0x01, price_rsp(1, 102264, 5, 395, 1, 1).hex(), [(day + 10, 1000), (day + 20, 3000)]))
    want.append((None, None))
    cases.append((0x01, price_rsp(1, 102264, 5, 395, 2, 1).hex(), [(day - 10, 5), (day + 10, 1000), (day + 20, 3000)]))
    want.append((None, 2000))
    # by hand: 1 m3 x 1.02264 x 39.5 MJ/m3 / 3.6 = 11.2206 kWh
    cases.append((0x01, price_rsp(1, 102264, 5, 395, 1, 1).hex(), [(day - 10, 5), (day + 10, 100), (day + 20, 1100)]))
    want.append((11221, 1000))
    out = mpy.run(CONVERT.replace("CASES", repr(cases)), heap="96k").stdout.split("\n")
    got = [ln.split()[1:] for ln in out if ln.startswith("W ")]
    assert [(None if a == "None" else int(a), None if b == "None" else int(b)) for a, b in got] == want


def test_a_display_booted_mid_day_takes_today_from_the_meter(mpy):
    # CurrentDayConsumptionDelivered (0x0401, uint24, the meter's unit) read
    # with the register: today = what the meter says, then grows with it
    frames = [
        (0x0702, ELEC_EP, setup(1, U.Kwh_and_Kwh_binary, 1, 1000, DT.Electric_Metering)),
        (0x0702, GAS_EP, setup(2, U.Cubic_Meter_and_Cubic_Meter_per_Hour_binary, 1, 100, DT.Mirrored_Gas_Metering)),
        (
            0x0702,
            GAS_EP,
            read_rsp(
                3, [f.ReadAttributeRecord(a, f.Status.SUCCESS, tv(a, v)) for a, v in ((0x0000, 5000), (0x0401, 123))]
            ),
        ),
        (0x0702, GAS_EP, report(4, [(0x0000, 5010)])),
    ]
    code = LINK.replace("FRAMES", repr([(c, ep, b.hex()) for c, ep, b in frames]))
    code += 'print("T", (g.base, g.register, g.figures()["today_l"]))\n'
    lines = mpy.run(code, heap="160k").stdout.split("\n")
    t = eval(next(ln for ln in lines if ln.startswith("T "))[2:])
    # 0.01 m3 units: register 50,000 l, today 1,230 l, then 100 l more
    assert t == (50000 - 1230, 50100, 1330)


def test_no_day_without_a_clock_and_the_meter_asked_again(mpy):
    # a gas reading before the clock is set keeps the register but starts no
    # day; the first with a valid clock starts one unknown and asks the meter
    # for CurrentDayConsumptionDelivered again (want_day)
    code = (
        "from meter import gas, localtime, zcl\n"
        "class C:\n    def now(self): return 0\n    def valid(self): return True\n"
        "g = gas.Gas(zcl.Meter(None, C()), 0, 2, localtime.Zone(), lambda: 0)\n"
        "g.meter.unit = 1\n"
        "g.reading(100, 0, 5000, 0, 4)\n"
        "print('A', g.day, g.base, g.register, g.want_day)\n"
        "g.reading(86400 * 900, 0, 5010, 0, 5)\n"
        "print('B', g.day, g.base, g.register, g.want_day)\n"
    )
    out = mpy.run(code).stdout.split("\n")
    assert "A -1 -1 5000 False" in out and "B 900 -1 5010 True" in out
