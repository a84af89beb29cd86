# Checks a status snapshot (docs/display.md) before it is drawn: a field of
# the wrong type is replaced by None (drawn as "—"), named and counted, so a
# bug elsewhere shows up on the diagnostics counters instead of stopping the
# display. A clean snapshot is returned as it is, without copying.
_NUM = (
    "demand_w",
    "today_wh",
    "price",
    "standing_charge",
    "cost_today",
    "cost_per_hour",
    "last_reading_age_s",
    "uptime_s",
    "fault_count",
)
# sub-fields: 0 a number, 1 a flag, 2 a str. Only what the screens format
# as a number or wrap as text: flags, words and names are drawn by truth or
# through str(), which no type breaks.
_SUB = {
    "meter": (("lqi", 0), ("rssi", 0)),
    "wifi": (("connected", 1), ("rssi", 0)),
    "cloud": (("last_ack_age_s", 0), ("pending", 0), ("realtime", 1)),
    "store": (("fill_pct", 0),),
}
# the supplier's fields (meter/zcl_prepay.py), most snapshots have none: a
# constant tuple, not more entries in the dict above (heap on the device)
_SUB2 = (
    ("prepay", (("credit", 0), ("emergency", 0), ("debt", 0))),
    ("message", (("text", 2), ("left_min", 0))),
    ("identity", (("status", 0),)),
    ("gas", (("today_wh", 0), ("today_kwh", 0), ("age_s", 0))),
)


def _num(v):
    return v is None or isinstance(v, (int, float))


def _fault(v):
    return v is None or (
        isinstance(v, (tuple, list))
        and len(v) == 3
        and isinstance(v[0], int)
        and isinstance(v[1], str)
        and isinstance(v[2], str)
    )


def _seq(v):
    return v if isinstance(v, list) else (v,)


def _subs(st, items, bad):
    for sub, fields in items:
        d = st.get(sub)
        if d is None:
            continue
        if not isinstance(d, dict):
            bad.append(sub)
            continue
        for k, kind in fields:
            v = d.get(k)
            if kind == 2:
                ok = v is None or isinstance(v, str)
            else:
                ok = _num(v) if not kind else v is None or isinstance(v, (bool, int))
            if not ok:
                bad.append(sub + "." + k)


def check(st):
    # -> (snapshot to draw, list of bad field names; empty when clean).
    if not isinstance(st, dict):
        return {}, ["status"]
    bad = []
    for k in _NUM:
        if not _num(st.get(k)):
            bad.append(k)
    if not _fault(st.get("fault")):
        bad.append("fault")
    c = st.get("currency")
    if c is not None and not isinstance(c, str):
        bad.append("currency")
    h = st.get("hourly_wh")
    if h is not None and not (isinstance(h, (list, tuple)) and all(_num(v) for v in h)):
        bad.append("hourly_wh")
    h = st.get("history")  # meter/history.py figures(): lists of numbers/None
    if h is not None and not (isinstance(h, dict) and all(_num(x) for v in h.values() for x in _seq(v))):
        bad.append("history")
    _subs(st, _SUB.items(), bad)
    _subs(st, _SUB2, bad)
    if not bad:
        return st, bad
    out = dict(st)
    for name in bad:
        if "." in name:
            sub, k = name.split(".")
            d = dict(out[sub])
            d[k] = None
            out[sub] = d
        elif name == "fault":
            del out["fault"]  # unknown, not "no fault"
        else:
            out[name] = None
    return out, bad
