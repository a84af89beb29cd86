"""`python -m ihd.provision ...`: the same as `ihd provision ...`."""

import sys

from ihd.cli import main

sys.exit(main(["provision", *sys.argv[1:]]))
