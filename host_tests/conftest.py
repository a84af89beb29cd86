"""Host tests: load the MicroPython harness plugin (host_tests/mpy_plugin.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["mpy_plugin", "pg_plugin", "pytester"]
