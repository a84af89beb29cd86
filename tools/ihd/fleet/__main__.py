"""`python -m ihd.fleet publish|endpoints ...`."""

import sys

from ihd.fleet.shards import main

sys.exit(main())
