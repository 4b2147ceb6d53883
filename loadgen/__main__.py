"""`python -m loadgen`: the same as `make loadtest`."""

import sys

from loadgen.cli import main

sys.exit(main())
