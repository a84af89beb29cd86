"""`python -m ihd.ota ...`: the same as `ihd ota ...`."""

import sys

from ihd.cli import main

sys.exit(main(["ota", *sys.argv[1:]]))
