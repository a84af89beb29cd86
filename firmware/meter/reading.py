# The one internal reading type, produced by both co-processor protocols.
#
# A reading is passed as five ints, never as an object, so that the meter
# link, the RAM ring and the flash log move readings without allocating:
#   utc_s         UTC seconds (Unix epoch); trust it only with F_TIME_VALID
#   demand_w      instantaneous demand in W (gas: l/h); negative is export
#   delivered_wh  summation delivered (imported) in Wh (gas: litres)
#   received_wh   summation received (exported) in Wh; 0 if the meter has none
#   flags         the F_* bits below
# Consumers take them as on_reading(utc_s, demand_w, delivered_wh,
# received_wh, flags).
from micropython import const

F_TIME_VALID = const(1)  # utc_s came from a synchronised clock
F_DEMAND = const(2)  # demand_w is a real value from this report
F_SUMMATION = const(4)  # delivered_wh is known
F_RECEIVED = const(8)  # received_wh is known
F_GAP = const(16)  # dropout: readings were missed before this one
F_GAS = const(32)  # gas meter: litres and l/h instead of Wh and W
F_ESTIMATED = const(64)  # value scaled from a unit we had to assume

ZIGBEE_EPOCH = const(946684800)  # 2000-01-01T00:00:00Z in Unix seconds
