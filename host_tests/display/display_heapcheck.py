# Heap footprint of the display, run on MicroPython under a heap cap with
# the code precompiled (.mpy: on the device it is frozen and takes no heap).
#   micropython display_heapcheck.py PANEL
# Opens the panel, shows the live screen, switches to diagnostics and back
# (full and partial refreshes), and prints one line "heapcheck <json>":
# bytes the display's data holds (frames and objects), its modules' heap
# (bytecode and font bytes, in flash when frozen), the driver's frame RAM
# and the heap left.
import gc
import sys

import hal  # noqa: F401  (the HAL's own heap is not the display's)

gc.collect()
base = gc.mem_alloc()
from display import driver, open_panel, screens  # noqa: E402
from display.ui import Display  # noqa: E402

name = sys.argv[1]
driver(name)  # the driver's code, imported lazily by open_panel
gc.collect()
code = gc.mem_alloc() - base
d = Display(open_panel(name))
fault = (14, "M05", "Paired, but no reading from the meter for 5 minutes.")
st = {"demand_w": 1234, "today_wh": 5000, "price": 20, "hourly_wh": [100] * 24, "fault": fault}
kinds = [d.update(st, 0)]
d.screen = screens.DIAG
kinds.append(d.update(st, 10))
st["demand_w"] = 99
d.screen = screens.LIVE
kinds.append(d.update(st, 300))
gc.collect()
held = gc.mem_alloc() - base - code
print(
    'heapcheck {"held": %d, "modules": %d, "frame_ram": %d, "free": %d, "kinds": %s}'
    % (held, code, d.panel.memory(), gc.mem_free(), kinds)
)
