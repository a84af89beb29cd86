"""`python -m ihd.emulators ...`: the same as `ihd emulator ...`."""

import sys

from ihd.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
