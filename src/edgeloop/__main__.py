import sys

from edgeloop.cli import main

sys.exit(main())
