"""`python3 tools/console --db DB [--port P]`, or `python -m console` with tools/ on
sys.path (docs/console.md). Started by a Python other than the project's .venv,
it re-runs itself under .venv/bin/python (tools/venvexec.py)."""

import sys
from pathlib import Path

if not __package__:  # run as a folder or file, not with -m: make `console` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import venvexec  # noqa: E402

venvexec.ensure("__main__")

from console import main  # noqa: E402

sys.exit(main())
