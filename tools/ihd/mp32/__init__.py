"""Our MicroPython (`make mp32`): its build from the pinned source (build.py,
variant/), the ESP32 port modules emulated on it (esp32port/, MicroPython code),
and which runtime runs the firmware on the host, mp32 or the wheel (runtime.py)."""
