"""The co-processor emulator's log as an oracle for the firmware's readings.

The emulator (ihd emulator) logs every report it sends and, for
EZSP, every answer to the firmware's polls. A reading the firmware produced
must be one of them: same kind, same values, a plausible time. Shared by the
EZSP and RAVEn end-to-end tests.
"""

from __future__ import annotations


def _kind(flags: int) -> str:
    # Which logged event a reading can come from: a poll answer carries
    # demand and both summations, a report one or the other (meter/reading.py).
    return {2: "demand", 4: "summation", 6: "poll"}.get(flags & 6, "none")


def _values(ev: dict) -> tuple:
    if ev["kind"] == "demand":
        return (ev["demand_w"], 0, 0)
    if ev["kind"] == "summation":
        return (0, ev["delivered_wh"], ev["received_wh"])
    return (ev["demand_w"], ev["delivered_wh"], ev["received_wh"])


def unexplained(events: list[dict], readings: list[tuple], tol_s: int) -> list[tuple]:
    """Readings (utc, demand_w, delivered_wh, received_wh, flags) that match no
    logged report or poll answer of their kind (same values, time within
    tol_s), each event explaining at most one reading."""
    pool: dict[str, list[dict]] = {"demand": [], "summation": [], "poll": []}
    for ev in events:
        if ev["kind"] in pool:
            pool[ev["kind"]].append(ev)
    used: set[int] = set()
    out = []
    for r in readings:
        cands = pool.get(_kind(r[4]), [])
        vals = tuple(r[1:4])
        hit = next(
            (ev for ev in cands if id(ev) not in used and _values(ev) == vals and abs(r[0] - ev["t"]) <= tol_s),
            None,
        )
        if hit is None:
            out.append(r)
        else:
            used.add(id(hit))
    return out
