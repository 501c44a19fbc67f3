"""Where a manifest's file paths may point: under the manifest's own directory.

A manifest is data, often written by someone else; its cells must not make a
training job read ``/etc/passwd``, ``../../secrets`` or a symlink that leads out
of the dataset folder. :func:`resolve_manifest_path` resolves a cell relative to
the manifest's directory, follows symlinks, and refuses anything that ends up
outside it, unless the caller opts in with ``allow_outside=True``.
"""

import os


def resolve_manifest_path(root, value, *, row, column, manifest, allow_outside=False):
    """Resolves one manifest cell to a path under ``root`` (the manifest's directory).

    Args:
        root: str. The manifest's directory.
        value: str. The cell: a path relative to ``root`` (absolute paths and
            ``..`` are only accepted with ``allow_outside``).
        row: int. The row's index (0 = first data row), for the error message.
        column: str. The column, for the error message.
        manifest: str. The manifest's path, for the error message.
        allow_outside: bool. Accept absolute paths and paths (or symlinks) that
            leave ``root``.

    Returns:
        str: the path to read (symlinks resolved).

    Raises:
        ValueError: the path is absolute or leads outside ``root`` (after
            following symlinks) and ``allow_outside`` is False; names the
            manifest, row, column and value.

    Example:
    ```python
    resolve_manifest_path("/data/set", "img/1.png", row=0, column="image", manifest="/data/set/train.csv")
    # "/data/set/img/1.png"
    ```
    """
    joined = os.path.join(root, value)  # an absolute value replaces root here
    resolved = os.path.realpath(joined)
    if allow_outside:
        return resolved
    base = os.path.realpath(root)
    inside = os.path.commonpath([base, resolved]) == base
    if os.path.isabs(value) or not inside:
        why = "is an absolute path" if os.path.isabs(value) else f"resolves to {resolved!r}, outside {base!r}"
        raise ValueError(
            f"manifest {manifest!r} row {row}, column {column!r}: path {value!r} {why}; manifest paths must "
            "stay under the manifest's directory (pass allow_outside=True to from_manifest to allow it)")
    return resolved
