"""The emulated ESI's Prepayment, Messaging, Device Management and extra
Metering attributes, as ZCL bytes (used by tools/ihd/emulators/ezsp_ncp.py).

The supplier's state is ihd.emulators.supplier.Supplier. Attribute values are
serialised with zigpy: Metering's own attribute types (SupplyStatus,
MeteringStatus, AmbientConsumptionIndicator, SiteId, MeterSerialNumber) and
zigpy.zcl.foundation's TypeValue with zigpy field types for Prepayment and
Device Management (zigpy 2.4.0 defines these clusters' ids but none of
their attributes or commands). Messaging's DisplayMessage, CancelMessage and
CancelAllMessages are laid out from the SE specification with zigpy's
field types, as PublishPrice is.
"""

from __future__ import annotations

import zigpy.types as zt
from zigpy.zcl import foundation as f
from zigpy.zcl.clusters.smartenergy import Messaging, Metering, Prepayment

PREPAYMENT = Prepayment.cluster_id  # 0x0705
MESSAGING = Messaging.cluster_id  # 0x0703
DEVICE_MGMT = 0x0708
ZIGBEE_EPOCH = 946684800
DISPLAY, CANCEL, CANCEL_ALL = 0x00, 0x01, 0x03


_TYPES = {a_id: Metering.attributes[a_id].type for a_id in (0x0014, 0x0200, 0x0207, 0x0307, 0x0308)}


def _tv(typ, value) -> f.TypeValue:
    return f.TypeValue(f.DataType.from_python_type(typ).type_id, typ(value))


def ambient_level(demand_w: int) -> int:
    """The emulated meter's own indicator (0 low, 1 medium, 2 high)."""
    return 0 if demand_w < 400 else 1 if demand_w < 2000 else 2


def attr(sup, meter, cluster: int, a: int):
    """A TypeValue for the ESI's extra attributes, or None (UNSUPPORTED_ATTRIBUTE)."""
    if cluster == Metering.cluster_id:
        if a not in _TYPES:
            return None
        types = _TYPES
        if a == 0x0200:
            return _tv(types[a], 0)
        if a == 0x0014 and sup.prepay:
            return _tv(types[a], sup.state()["supply"])
        if a == 0x0207 and sup.ambient:
            return _tv(types[a], ambient_level(meter.demand_w()))
        if a == 0x0307:
            return _tv(types[a], sup.site_id.encode())
        if a == 0x0308:
            return _tv(types[a], sup.serial.encode())
        return None
    if cluster == PREPAYMENT and sup.prepay:
        st = sup.state()
        values = {
            0x0000: (zt.bitmap16, 0x0002),  # PaymentControlConfiguration: prepayment enabled
            0x0001: (zt.int32s, st["credit"]),
            0x0002: (zt.int32s, st["emergency"]),
            0x0003: (zt.bitmap8, st["status"]),
            0x0005: (zt.int32s, st["debt"]),
            0x0032: (zt.uint32_t, sup.low),
        }
        if a in values:
            return _tv(*values[a])
        return None
    if cluster == DEVICE_MGMT and a == 0x0101:
        return _tv(zt.LVBytes, sup.name.encode())
    return None


def display_message(m: dict, control: int = 0x04) -> bytes:
    """DisplayMessage: MessageID u32, MessageControl map8 (here importance
    medium), StartTime UTC, DurationInMinutes u16 (0xFFFF until changed),
    Message char string."""
    mins = 0xFFFF if m["minutes"] is None else m["minutes"]
    return (
        zt.uint32_t(m["id"]).serialize()
        + zt.bitmap8(control).serialize()
        + zt.uint32_t(m["start"] - ZIGBEE_EPOCH).serialize()
        + zt.uint16_t(mins).serialize()
        + zt.LVBytes(m["text"] if isinstance(m["text"], bytes) else m["text"].encode()).serialize()
    )


def cancel_message(mid: int) -> bytes:
    return zt.uint32_t(mid).serialize() + zt.bitmap8(0).serialize()


def cancel_all(t: float) -> bytes:
    return zt.uint32_t(int(t) - ZIGBEE_EPOCH).serialize()


def script_frames(sup, t: float, start: int) -> list[tuple[int, bytes]]:
    """(command id, payload) for every message event due by t."""
    out = []
    for ev, shown in sup.due(t, start):
        if ev[1] == "display":
            out.append((DISPLAY, display_message(shown)))
        elif ev[1] == "cancel":
            out.append((CANCEL, cancel_message(ev[2])))
        else:
            out.append((CANCEL_ALL, cancel_all(t)))
    return out
