# The one internal reading type, produced by both co-processor protocols.
#
# A reading is passed as five ints, never as an object, so that the meter
# link, the RAM ring and the flash log move readings without allocating:
#   t_s           device seconds: UTC seconds since 2024-01-01T00:00:00Z
#                 (DEV_EPOCH); trust it only with F_TIME_VALID
#   demand_w      instantaneous demand in W (gas: l/h); negative is export
#   delivered_wh  summation delivered (imported) in Wh (gas: litres)
#   received_wh   summation received (exported) in Wh
#   flags         the F_* bits below
# Consumers take them as on_reading(t_s, demand_w, delivered_wh,
# received_wh, flags).
#
# Why device seconds and not Unix seconds: on the 32-bit ESP32 a small int
# holds 31 bits, so every value >= 2**30 (Unix time since 2004) is a boxed
# int and every sum or difference with one allocates. t_s is a small int
# until 2058 (2**30 s after 2024), so the meter link, the dropout check, the
# RAM ring, the flash codec and the uplink codec move and subtract times
# without allocating. UTC appears only at the edges: the clock
# (meter/devclock.py), the flash sector header (store/layout.py), the
# uplink batch header (uplink/codec.py) and the display's day boundaries;
# none of those formats changed (they still hold Unix seconds).
#
# A value counts only when its flag is set, and its flag says it came from
# the report (or poll answer) this reading was made from: F_DEMAND for
# demand_w, F_SUMMATION for delivered_wh, F_RECEIVED for received_wh. Both
# protocols pass 0 for a value the report did not carry; no link repeats an
# older value or passes a made-up one (-1, a guess). A consumer that wants
# "the latest known summation" keeps the last flagged one itself; the
# dropout check (meter/supervise.py) needs to know which readings are new
# summation samples, and a repeated value would look like one.
from micropython import const

F_TIME_VALID = const(1)  # utc_s came from a synchronised clock
F_DEMAND = const(2)  # demand_w is from this report
F_SUMMATION = const(4)  # delivered_wh is from this report
F_RECEIVED = const(8)  # received_wh is from this report
F_GAP = const(16)  # dropout: readings were missed before this one
F_GAS = const(32)  # gas meter: litres and l/h instead of Wh and W
F_ESTIMATED = const(64)  # value scaled from a unit we had to assume

ZIGBEE_EPOCH = const(946684800)  # 2000-01-01T00:00:00Z in Unix seconds
ZB_TO_DEV = const(757382400)  # DEV_EPOCH in ZigBee seconds: t_s = zigbee_s - ZB_TO_DEV
# 2024-01-01T00:00:00Z in Unix seconds: a whole number of days, so hour and
# day boundaries fall at the same t_s % 3600 / % 86400 as in UTC. A global,
# not const(): above 2**30 it is a boxed int on a 32-bit port, built once.
DEV_EPOCH = ZIGBEE_EPOCH + ZB_TO_DEV
NO_TIME = -DEV_EPOCH  # t_s of Unix 0: a reading with no time at all
