"""``python -m mmkeras``: the command line (see :mod:`mmkeras.cli`)."""

import sys

from mmkeras.cli import main

sys.exit(main())
