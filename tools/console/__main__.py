"""python -m console --db DB [--port P] (with tools/ on sys.path): docs/console.md."""

import sys

from console import main

sys.exit(main())
