"""`python -m adapters`: the `kajitori` command, as its installed script runs it."""

import sys

from adapters.launcher import main

sys.exit(main())
