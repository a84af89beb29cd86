"""`python -m ihd.capture ...`: the same as `ihd capture ...`."""

import sys

from ihd.cli import main

sys.exit(main(["capture", *sys.argv[1:]]))
