"""`python -m ihd.collector ...`: the same as `ihd collector ...`."""

import sys

from ihd.cli import main

sys.exit(main(["collector", *sys.argv[1:]]))
