# MicroPython: run the firmware's meter link against the co-processor
# emulator (IHD_UART) until it disconnects. Prints one line per reading
# ("R utc demand_w delivered_wh received_wh flags") and a final status line
# ("S " + JSON of link status and fault counts; for RAVEn "L " + JSON of
# what the link learnt: warnings, meters, stick status, device info; "T " +
# JSON of the tariff: price, currency, tier, standing charge, today's cost
# counted from the link's first reading).
import asyncio
import json
import sys

import board
import faults
import hal
from meter import make_link
from meter.reading import DEV_EPOCH

f = faults.Faults()


def on_reading(t_s, demand_w, delivered_wh, received_wh, flags):
    # readings carry device seconds (meter/reading.py); printed as Unix
    print("R", t_s + DEV_EPOCH, demand_w, delivered_wh, received_wh, flags)


link = make_link(sys.argv[1], hal.Uart(board.METER_UART), on_reading, f)
asyncio.run(link.run())
st = link.status.as_dict()
st["fault_counts"] = {faults.TABLE[i][1]: f.counts[i] for i in range(len(faults.TABLE)) if f.counts[i]}
st["faults_active"] = [faults.describe(n)[1] for n in f.active()]
print("S", json.dumps(st))
t = link.tariff
t.seed(t.day, 0)  # no store here: the link's first reading starts the day
tf = {"raw": t.raw, "digits": t.digits, "currency": t.currency, "tier": t.tier, "standing": t.standing}
tf.update(updates=t.updates, changes=t.changes, cost=t.cost_today(), exact=t.cost_exact(), fig=t.figures(1000))
print("T", json.dumps(tf))
if sys.argv[1] == "raven":
    info = {
        "warnings": link.warnings,
        "last_warning": link.last_warning and link.last_warning.decode(),
        "meters": [m.decode() for m in link.meters],
        "link_status": link.link_status and link.link_status.decode(),
        "device": link.device and {k.decode(): v.decode() for k, v in link.device.items()},
        "parser": [link.parser.good, link.parser.bad, link.parser.ignored],
    }
    print("L", json.dumps(info))
