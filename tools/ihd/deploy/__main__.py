"""`python -m ihd.deploy build|deploy|flash ...` (`ihd deploy`, `ihd flash`)."""

import sys

from ihd.deploy.tool import main

sys.exit(main())
