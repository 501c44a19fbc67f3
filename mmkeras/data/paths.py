"""Where a manifest's file paths may point: under the manifest's own directory.

A manifest is data, often written by someone else; its cells must not make a
training job read ``/etc/passwd``, ``../../secrets`` or a symlink that leads out
of the dataset folder. :func:`resolve_manifest_path` resolves a cell relative to
the manifest's directory, follows symlinks, and refuses anything that ends up
outside it, unless the caller opts in with ``allow_outside=True``.
"""

import os


def resolve_manifest_path(root, value, *, where, column, allow_outside=False):
    """Resolves one manifest cell to a path under ``root`` (the manifest's directory).

    Args:
        root: str. The manifest's directory.
        value: str. The cell: a path relative to ``root`` (absolute paths and
            ``..`` are only accepted with ``allow_outside``).
        where: str. The row's place (``"manifest 'm.csv' line 7"``), for the error message.
        column: str. The column, for the error message.
        allow_outside: bool. Accept absolute paths and paths (or symlinks) that
            leave ``root``.

    Returns:
        str: the path to read (symlinks resolved).

    Raises:
        ValueError: the path holds a NUL byte, or is absolute or leads outside
            ``root`` (after following symlinks) and ``allow_outside`` is False;
            names the manifest, line, column and value.

    Example:
    ```python
    resolve_manifest_path("/data/set", "img/1.png", where="manifest 'train.csv' line 2", column="image")
    # "/data/set/img/1.png"
    ```
    """
    if "\0" in value:
        raise ValueError(f"{where}, column {column!r}: path {value!r} holds a NUL byte")
    joined = os.path.join(root, value)  # an absolute value replaces root here
    resolved = os.path.realpath(joined)
    if allow_outside:
        return resolved
    base = os.path.realpath(root)
    inside = os.path.commonpath([base, resolved]) == base
    if os.path.isabs(value) or not inside:
        why = "is an absolute path" if os.path.isabs(value) else f"resolves to {resolved!r}, outside {base!r}"
        raise ValueError(
            f"{where}, column {column!r}: path {value!r} {why}; manifest paths must stay under the manifest's "
            "directory (to allow it, pass allow_outside=True to fit/evaluate/predict/report/from_manifest, or "
            "--allow-outside on the command line)")
    return resolved
