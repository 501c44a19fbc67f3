"""sha256 checks of files a user keeps (datasets, pretrained weights), cached per process; no TensorFlow."""

import hashlib
from pathlib import Path

# Verified digests, keyed by (path, size, mtime_ns): re-hashing is skipped while a
# file is unchanged, for the life of the process. Nothing is written to disk, so
# read-only data directories (the shared copy) work as they are.
_VERIFIED = {}


def sha256_file(path, chunk_size=1 << 20):
    """Hex sha256 of a file's bytes.

    Example:
    ```python
    sha256_file("mnist/mnist.npz")  # '8e6ec8c3...'
    ```
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_tuple(expected):
    return (expected,) if isinstance(expected, str) else tuple(expected)


def checksum_error(what, expected, actual):
    """The `ValueError` raised on a mismatch: names the file, the expected and actual sums."""
    expected = _as_tuple(expected)
    wanted = expected[0] if len(expected) == 1 else "one of " + ", ".join(expected)
    return ValueError(
        f"mmkeras: sha256 mismatch for {what}: expected {wanted}, got {actual}. The file is "
        "corrupt or not the expected version; delete it so it is downloaded again, or point "
        "data_dir at a good copy."
    )


def verify_file(path, expected):
    """Checks a file's sha256 against one or several known-good sums (cached per process).

    Args:
        path: the file.
        expected: str, or a tuple of str when several versions are accepted.

    Returns:
        The actual hex digest.

    Raises:
        ValueError: on a mismatch, naming the file, the expected and the actual sum.

    Example:
    ```python
    verify_file(Path(data_dir) / "sst2/dev.tsv", SST2_SHA256["dev"])
    ```
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    actual = _VERIFIED.get(key)
    if actual is None:
        actual = sha256_file(path)
    if actual not in _as_tuple(expected):
        _VERIFIED.pop(key, None)
        raise checksum_error(path, expected, actual)
    _VERIFIED[key] = actual
    return actual
