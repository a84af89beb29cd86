"""Raw co-processor captures decoded by the firmware's own parsers (`ihd capture
decode`, docs/meter.md): decode.py on CPython runs capture_mpy.py on MicroPython."""
