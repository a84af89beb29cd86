"""`python -m ihd PART ...`: the same as the `ihd` command."""

import sys

from ihd.cli import main

sys.exit(main())
