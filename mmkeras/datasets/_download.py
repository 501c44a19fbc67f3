"""Shared plumbing for the dataset loaders: data directory, sha256 checks, downloads, tf.data.

A data directory has the layout of the project's shared data folder::

    fsdd/recordings/{digit}_{speaker}_{index}.wav
    mnist/mnist.npz
    sst2/{train,dev,test}.tsv

It is, in order: the `data_dir` argument, the `MMKERAS_DATA_DIR` environment
variable, or a per-user cache (`$XDG_CACHE_HOME/mmkeras/data`, by default
`~/.cache/mmkeras/data`). Downloads only ever write into the resolved directory,
through a temporary file and `os.replace`, so a reader never sees half a file.
A download stops at a byte cap, and archive members are read into memory with
caps on their count and sizes and verified before anything is extracted.
"""

import os
import urllib.request
import zipfile
from pathlib import Path

# sha256 checks live in mmkeras.utils.checksums (TensorFlow-free: the weights registry uses them too).
from mmkeras.utils.atomic import atomic_path
from mmkeras.utils.checksums import _VERIFIED, _as_tuple, checksum_error, sha256_file, verify_file  # noqa: F401

ENV_VAR = "MMKERAS_DATA_DIR"

def default_cache_dir():
    """The per-user directory used when neither `data_dir` nor `MMKERAS_DATA_DIR` is set.

    Returns:
        `Path`: `$XDG_CACHE_HOME/mmkeras/data`, or `~/.cache/mmkeras/data`.

    Example:
    ```python
    default_cache_dir()  # PosixPath('/home/me/.cache/mmkeras/data')
    ```
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmkeras" / "data"


def resolve_data_dir(data_dir=None):
    """Resolves the data directory: argument, then `MMKERAS_DATA_DIR`, then the cache.

    Args:
        data_dir: str, `Path` or None.

    Returns:
        `(path, is_default)`: the directory and whether it is the per-user cache
        (the only place downloads go to unless the caller asks otherwise).

    Example:
    ```python
    path, is_default = resolve_data_dir("../shared/data")  # (Path(...), False)
    ```
    """
    if data_dir is not None:
        return Path(data_dir).expanduser(), False
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), False
    return default_cache_dir(), True


def download_allowed(download, is_default):
    """`download=None` means: download only into the default per-user cache."""
    return is_default if download is None else bool(download)


def fetch(url, dest_file, max_bytes=None):
    """Copies the bytes at `url` into the open binary file `dest_file`, at most `max_bytes`.

    Any scheme `urllib` knows works, `file://` included (the tests use it, so they
    never reach the network). Tests may also monkeypatch this function.

    Raises:
        ValueError: the source holds more than `max_bytes` bytes (the copy stops there).
    """
    with urllib.request.urlopen(url, timeout=60) as response:
        copied = 0
        for block in iter(lambda: response.read(1 << 20), b""):
            copied += len(block)
            if max_bytes is not None and copied > max_bytes:
                raise ValueError(f"mmkeras: {url} holds more than {max_bytes} bytes; refusing to download it")
            dest_file.write(block)


def download_file(url, dest, expected=None, max_bytes=None):
    """Downloads `url` to `dest` atomically, verifying its sha256 before it lands.

    The bytes go to a temporary file in `dest`'s directory, which replaces
    `dest` (`os.replace`) only once complete and verified.

    Args:
        url: source URL (`https://`, `file://`, ...).
        dest: final path; parent directories are created.
        expected: None (no check), a hex sha256, or a tuple of accepted sums.
        max_bytes: int or None. Refuse a download larger than this.

    Returns:
        `dest` as a `Path`.

    Raises:
        ValueError: the download's sha256 is not an expected one, or it is larger
            than `max_bytes` (nothing is written).
        OSError: the fetch failed (`urllib.error.URLError` is an `OSError`).

    Example:
    ```python
    download_file("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                  cache / "mnist/mnist.npz", MNIST_SHA256)
    ```
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:  # fsynced, umask mode, a killed download's temporary removed next time
        with open(tmp, "wb") as f:
            fetch(url, f, max_bytes=max_bytes)
        if expected is not None:
            actual = sha256_file(tmp)
            if actual not in _as_tuple(expected):
                raise checksum_error(f"{dest.name} downloaded from {url}", expected, actual)
    if expected is not None:
        st = dest.stat()
        _VERIFIED[(str(dest.resolve()), st.st_size, st.st_mtime_ns)] = actual
    return dest


def read_zip_members(path, wanted, *, max_members, max_member_bytes, max_total_bytes):
    """Reads the archive members `wanted(name)` selects into memory, within size caps.

    Nothing is written to disk, so the caller can verify the content (a digest of
    what it will extract) before extracting anything. Declared sizes are checked
    first, and reads stop one byte past the cap, so a member that lies about its
    size (a zip bomb) cannot use more memory than the cap either.

    Args:
        path: the zip file.
        wanted: callable ``name -> bool``.
        max_members: int. Largest number of entries the archive may list.
        max_member_bytes: int. Largest uncompressed size of one wanted member.
        max_total_bytes: int. Largest total of the wanted members.

    Returns:
        dict ``{member name: bytes}``.

    Raises:
        ValueError: a cap is exceeded or the file is not a zip archive (names the
            archive, the member and the cap).

    Example:
    ```python
    wavs = read_zip_members("fsdd.zip", lambda n: n.endswith(".wav"), max_members=10_000,
                            max_member_bytes=1 << 20, max_total_bytes=200 << 20)
    ```
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"mmkeras: {path} is not a zip archive ({e})") from e
    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise ValueError(f"mmkeras: archive {path} lists {len(infos)} members, more than {max_members}")
        out, total = {}, 0
        for info in infos:
            if not wanted(info.filename):
                continue
            total += info.file_size
            if info.file_size > max_member_bytes or total > max_total_bytes:
                raise ValueError(f"mmkeras: archive {path} member {info.filename!r} declares {info.file_size} bytes "
                                 f"(caps: {max_member_bytes} per member, {max_total_bytes} in all)")
            with archive.open(info) as member:
                data = member.read(max_member_bytes + 1)
            if len(data) > max_member_bytes:
                raise ValueError(f"mmkeras: archive {path} member {info.filename!r} holds more than "
                                 f"{max_member_bytes} bytes")
            out[info.filename] = data
    return out


def missing_error(root, relpath, hint=""):
    """The `FileNotFoundError` for a file absent from the data directory."""
    return FileNotFoundError(
        f"mmkeras: {relpath} not found in data directory {root} (resolved from the data_dir "
        f"argument, else ${ENV_VAR}, else {default_cache_dir()}). Point data_dir at a folder "
        f"laid out as fsdd/recordings/*.wav, mnist/mnist.npz, sst2/*.tsv{hint}."
    )


def ensure_file(root, relpath, expected, url=None, download=False):
    """Returns the verified path of `root/relpath`, downloading it first if allowed.

    Args:
        root: the resolved data directory.
        relpath: path inside it ("mnist/mnist.npz").
        expected: hex sha256 or tuple of accepted sums.
        url: where to download from when missing, or None.
        download: whether a missing file may be downloaded.

    Raises:
        FileNotFoundError: missing and not downloadable (offline, or not allowed);
            names the directory and the file.
        ValueError: sha256 mismatch (names file, expected and actual sum).

    Example:
    ```python
    path = ensure_file(root, "sst2/dev.tsv", SST2_SHA256["dev"])
    ```
    """
    root = Path(root)
    path = root / relpath
    if not path.is_file():
        if not (download and url):
            hint = "" if url is None else ", or pass download=True to fetch it"
            raise missing_error(root, relpath, hint)
        try:
            download_file(url, path, expected)
        except OSError as e:
            raise FileNotFoundError(
                f"mmkeras: {relpath} not found in data directory {root}, and downloading it "
                f"from {url} failed ({e}). Offline? Copy the file there or point data_dir at "
                "a folder that has it."
            ) from e
    verify_file(path, expected)
    return path


def to_dataset(x, y, batch_size=None, shuffle=False, seed=None):
    """Raw arrays -> `tf.data.Dataset` of `(dict of tf.string, int64 label)`.

    Args:
        x: dict modality -> object array of bytes or str.
        y: int64 labels.
        batch_size: int to batch (the last batch may be smaller), or None.
        shuffle: shuffle with a full-size buffer, reshuffled each epoch.
        seed: shuffle seed.

    Example:
    ```python
    ds = to_dataset({"text": np.array(["a", "b"], object)}, np.array([0, 1]), batch_size=2)
    ```
    """
    import tensorflow as tf  # Only the tf.data builders need TensorFlow.

    features = {k: tf.constant(list(v), dtype=tf.string) for k, v in x.items()}
    ds = tf.data.Dataset.from_tensor_slices((features, tf.constant(y, dtype=tf.int64)))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        ds = ds.batch(batch_size)
    return ds
