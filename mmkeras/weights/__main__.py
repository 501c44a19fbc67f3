"""``python -m mmkeras.weights list | install NAME... | path NAME``: see :mod:`mmkeras.weights.cli`."""

import sys

from mmkeras.weights.cli import main

if __name__ == "__main__":
    sys.exit(main())
