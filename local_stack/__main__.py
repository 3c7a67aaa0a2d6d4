"""`python -m local_stack` (what `make run` runs)."""

import sys

from local_stack.run import main

raise SystemExit(main(sys.argv[1:]))
