"""`python -m ihd.panel ...`: the same as `ihd panel ...`."""

import sys

from ihd.cli import main

sys.exit(main(["panel", *sys.argv[1:]]))
