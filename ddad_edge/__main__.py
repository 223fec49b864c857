import sys

from ddad_edge.cli import main

sys.exit(main())
