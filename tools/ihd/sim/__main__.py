"""`python -m ihd.sim ...`: the same as `ihd sim ...`."""

import sys

from ihd.cli import main

sys.exit(main(["sim", *sys.argv[1:]]))
