"""Host tests: load the MicroPython harness plugin (host_tests/mpy_plugin.py)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The host tools the tests start (`python -m ihd.PART`) are this checkout's,
# whichever checkout the .venv's editable install points at.
_TOOLS = str(Path(__file__).resolve().parent.parent / "tools")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_TOOLS, os.environ.get("PYTHONPATH", "")) if p)

pytest_plugins = ["mpy_plugin", "pg_plugin", "pytester"]
