"""`python -m ddad_edge`: the command line (ddad_edge.cli.main)."""

import sys

try:
    from ddad_edge.cli import main
except KeyboardInterrupt:  # Ctrl-C while the package is still loading: one line, not a traceback
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
