"""`python -m ihd.collector.console --db DB [--port P]`: the support console
alone (docs/console.md); `ihd collector console` is the same."""

import sys

from ihd.collector.console import main

sys.exit(main())
