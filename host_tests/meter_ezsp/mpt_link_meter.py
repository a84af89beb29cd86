# The link takes readings from one meter only: the first (node, endpoint)
# to send a good Metering frame, or the configured one. An ESI commonly
# also serves a mirrored gas meter on another endpoint; its values must not
# mix into the electricity readings, nor another node set our clock.
import faults
from meter import ezsp_link

HEAP = "160k"  # code compiled from source at import sits in this heap too


def report(attr_bytes):
    f = bytes([0x18, 0x01, 0x0A]) + attr_bytes
    return f, len(f)


def demand(v):
    return report(bytes([0x00, 0x04, 0x2A, v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF]))


# Read Attributes Response to the link's setup read (zcl.SETUP_ATTRS):
# UnitofMeasure kWh, Multiplier 1, Divisor 1, MeteringDeviceType electric.
# No reading leaves before it (the device type: meter/gas.py).
SCALING = bytes(
    [0x18, 0x03, 0x01, 0x00, 0x03, 0x00, 0x30, 0x00, 0x01, 0x03, 0x00, 0x22, 1, 0, 0, 0x02, 0x03, 0x00, 0x22, 1, 0, 0]
    + [0x06, 0x03, 0x00, 0x30, 0x00]
)


def test_first_meter_is_kept():
    out = []
    link = ezsp_link.EzspLink(None, lambda *r: out.append(r), faults.Faults())
    link._incoming(0x0702, 9, 0x0000, 200, -50, SCALING, 0, len(SCALING))  # ESI answers the setup read
    f, n = demand(1500)
    link._incoming(0x0702, 9, 0x0000, 200, -50, f, 0, n)  # ESI, electricity on endpoint 9
    f, n = demand(7)
    link._incoming(0x0702, 2, 0x0000, 200, -50, f, 0, n)  # mirrored gas meter, endpoint 2
    link._incoming(0x0702, 9, 0x1234, 200, -50, f, 0, n)  # another node altogether
    assert [r[1] for r in out] == [1500 * 1000]  # kW, multiplier and divisor 1
    # endpoint 2 is held until its device type is known (asked: probe), the other node ignored
    assert link.meter_ep == 9 and link.meter_nwk == 0 and link.other_meter == 1 and link.gas.probe == 2
    # Time from another node is ignored too.
    t = bytes([0x18, 0x02, 0x0A, 0x00, 0x00, 0xE2, 0x80, 0x5F, 0xE8, 0x30])
    link._incoming(0x000A, 1, 0x1234, 200, -50, t, 0, len(t))
    assert link.other_meter == 2
    assert link.status.lqi == 200 and link.status.rssi == -50


def test_configured_meter_only():
    out = []
    link = ezsp_link.EzspLink(None, lambda *r: out.append(r), faults.Faults(), meter_ep=2, meter_nwk=0)
    link._incoming(0x0702, 2, 0x0000, 200, -50, SCALING, 0, len(SCALING))
    f, n = demand(1500)
    link._incoming(0x0702, 9, 0x0000, 200, -50, f, 0, n)
    f, n = demand(7)
    link._incoming(0x0702, 2, 0x0000, 200, -50, f, 0, n)
    assert [r[1] for r in out] == [7000] and link.other_meter == 0 and link.gas.probe == 9  # asked what it is


def test_config_dict_form_accepted():
    link = ezsp_link.EzspLink({"uart": {"connect": "tcp:127.0.0.1:1"}, "install_code": "00"}, print, faults.Faults())
    assert link.cfg["install_code"] == "00" and link._uart_arg == {"connect": "tcp:127.0.0.1:1"}


def test_make_link_takes_the_install_code_and_options():
    import meter

    cfg = {"connect": "tcp:127.0.0.1:1"}
    link = meter.make_link("ezsp", cfg, print, faults.Faults(), install_code="83FE", meter_ep=9, poll_s=60)
    assert link.cfg["install_code"] == "83FE" and link._uart_arg == cfg
    assert link.meter_ep == 9 and link._locked and link.poll_s == 60
    link = meter.make_link("ezsp", None, print, faults.Faults())
    assert link.cfg["install_code"] is None and not link._locked
