"""Python-side checks of input files, before any of them reaches a TF graph.

The in-graph checks (``mmkeras.preprocessing``) are the ones serving relies on;
these cheap ones run first on files named by a manifest or on the command line:

- :func:`stat_problem`: the path is ``stat``-ed, never opened, so a FIFO, a
  device or a directory is refused by kind (opening a FIFO blocks until a
  writer comes; reading a character device never ends), and its size is
  compared with the modality's ``max_bytes`` before any byte is read;
- :func:`read_checked`: opens the file without following a final symlink and
  without blocking, checks that it is the file that was ``stat``-ed (same
  device, inode, size and modification time) and reads at most its size, so a
  file swapped in after the check is refused rather than read;
- :func:`file_problem`: the kind check on the first and last 16 bytes (the
  signature, and a PNG/JPEG not cut short), read through :func:`read_checked`'s
  checks; it also tells the CLI which modality a file is.

Which bytes make a file of which modality is each modality's declaration
(``Modality.file_signatures``, ``file_suffixes``, ``file_problem``): this module asks
the registry, so a registered modality's files are recognised here too.
"""

import errno
import os
import stat as stat_lib

from mmkeras.modalities import file_modality as _file_modality
from mmkeras.modalities import modality, modality_order
from mmkeras.modalities import sniff as _sniff

# Formats no modality reads, named in errors ("is a FLAC file, not ...").
_OTHER_SIGNATURES = ((b"ID3", "an MP3 file (ID3 tag)"), (b"\xff\xfb", "an MP3 file"), (b"\xff\xf3", "an MP3 file"),
                     (b"fLaC", "a FLAC file"), (b"OggS", "an Ogg file"), (b"RIFF", "a RIFF file"),
                     (b"%PDF", "a PDF file"), (b"PK\x03\x04", "a ZIP archive"))
_KINDS = ((stat_lib.S_ISDIR, "a directory"), (stat_lib.S_ISFIFO, "a FIFO (named pipe)"),
          (stat_lib.S_ISCHR, "a character device"), (stat_lib.S_ISBLK, "a block device"),
          (stat_lib.S_ISSOCK, "a socket"))
# Never block on open (a FIFO swapped in after the check), never follow a final symlink.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_END_BYTES = 16


class FileCheckError(ValueError):
    """A file refused by a check here; the message says what it is and what was expected."""


def identity(st):
    """What must not change between a file's check and its read: device, inode, size, mtime."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def kind_of(st):
    """``"a directory"``, ``"a FIFO (named pipe)"``, ... or None for a regular file."""
    if stat_lib.S_ISREG(st.st_mode):
        return None
    return next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")


def stat_problem(path, max_bytes=None):
    """``(stat result, None)``, or ``(None, why)`` when ``path`` cannot be an input file.

    Never opens the file: refuses what does not exist, what is not a regular file
    (directory, FIFO, device, socket: named), an empty file (an empty value means
    "absent", so it would silently be dropped) and a file over ``max_bytes``.

    Example:
    ```python
    st, why = stat_problem("clips/pipe", max_bytes=64 << 20)  # (None, "is a FIFO (named pipe), not a ...")
    ```
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, "does not exist"
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        return None, f"cannot be read ({getattr(err, 'strerror', None) or err})"
    kind = kind_of(st)
    if kind:
        return None, f"is {kind}, not a regular file"
    if st.st_size == 0:
        return None, "is empty (0 bytes); leave the cell empty to mark the modality absent"
    if max_bytes is not None and st.st_size > max_bytes:
        return None, f"is {st.st_size} bytes, more than the limit max_bytes={max_bytes}"
    return st, None


def _open_same(path, expected):
    """An fd of ``path`` if it is still the file ``expected`` (an identity tuple), else FileCheckError."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW: a symlink was put in its place
            raise FileCheckError("changed after it was checked (it is now a symbolic link); it is not read") from None
        raise FileCheckError(f"cannot be read ({err.strerror or err})") from None
    st = os.fstat(fd)
    if kind_of(st) or identity(st) != tuple(expected):
        os.close(fd)
        raise FileCheckError("changed after it was checked (a different file, size or modification time); "
                             "it is not read")
    return fd


def read_checked(path, expected, start=0, length=None):
    """The bytes of the file ``expected`` (an :func:`identity`) at ``path``; at most its checked size.

    Raises:
        FileCheckError: the file at ``path`` is no longer the one that was checked.
    """
    return _read_ranges(path, expected, [(start, length)])[0]


def _read_ranges(path, expected, ranges):
    """:func:`read_checked` of several ``(start, length)`` ranges through one open of the file."""
    fd = _open_same(path, expected)
    size = expected[2]
    try:
        return [_pread_all(fd, start, size - start if length is None else min(length, max(size - start, 0)))
                for start, length in ranges]
    finally:
        os.close(fd)


def _pread_all(fd, start, length):
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, length - done, start + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def sniff(head):
    """Which registered modality's file the leading bytes are: its name, or None."""
    return _sniff(head)[0]


def _describe(head):
    if head[4:12] in (b"ftypM4A ", b"ftypisom", b"ftypmp42"):
        return "an MP4/M4A file"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF image"
    return next((what for sig, what in _OTHER_SIGNATURES if head.startswith(sig)), None)


def content_problem(head, tail, modality_name):
    """Why a file with these first/last 16 bytes cannot be a ``modality_name`` input, or None."""
    expected = modality(modality_name)
    if not expected.file_signatures:
        return None  # the modality does not say what its files look like
    if expected.file_kind(head) is None:
        other = sniff(head)
        what = _describe(head) or (modality(other).file_noun if other else None) or "not a recognised format"
        return f"is {what}, not {expected.file_expected}"
    return expected.file_problem(head, tail)


def checked_problem(path, expected, modality):
    """:func:`content_problem` of the file ``expected`` at ``path`` (reads 32 bytes), or why it cannot be read."""
    try:
        head, tail = _read_ranges(path, expected, [(0, _END_BYTES), (max(expected[2] - _END_BYTES, 0), _END_BYTES)])
    except FileCheckError as err:
        return str(err)
    return content_problem(head, tail, modality)


def file_problem(path, modality, max_bytes=None):
    """Why ``path`` cannot be a ``modality`` input, or None if it looks right.

    :func:`stat_problem` first (kind, emptiness, size, without opening), then
    the first and last 16 bytes: a PNG/JPEG/BMP/GIF or RIFF/WAVE signature, and a
    PNG or JPEG not cut short.

    Example:
    ```python
    file_problem("clips/a.wav", "audio")  # "is an MP3 file (ID3 tag), not a RIFF/WAVE file ..."
    ```
    """
    st, problem = stat_problem(path, max_bytes)
    return problem or checked_problem(path, identity(st), modality)


def read_input_file(path, max_bytes):
    """``(modality, value)`` of a file named on the command line: its bytes, or the text of a ``.txt``.

    The file is ``stat``-ed first (a FIFO, device or directory is refused by kind,
    a missing file as missing), its size compared with its modality's limit before
    it is read, its name or first bytes tell the modality (each registered modality
    declares its suffixes and signatures), and the whole file is read only while it
    is still the file that was checked.

    Args:
        path: str.
        max_bytes: dict ``{modality: int}``: the largest file per modality.

    Raises:
        ValueError: naming ``path`` and what is wrong.

    Example:
    ```python
    read_input_file("cat.png", {"image": 16 << 20, "audio": 64 << 20, "text": 1 << 20})  # ("image", b"\\x89PNG...")
    ```
    """
    st, problem = stat_problem(path)
    try:
        if problem:
            raise FileCheckError(problem)
        expected = identity(st)
        name, kind = _file_modality(path, read_checked(path, expected, 0, _END_BYTES))
        if name is None:
            nouns = [modality(m).file_noun for m in modality_order() if modality(m).file_noun]
            raise FileCheckError(f"is neither {', '.join(nouns[:-1])} nor {nouns[-1]}" if len(nouns) > 1 else
                                 f"is not {nouns[0] if nouns else 'a file any modality reads'}")
        limit = max_bytes.get(name)
        if limit is not None and st.st_size > limit:
            raise FileCheckError(f"is {st.st_size} bytes, more than the limit max_bytes={limit} for {name}")
        if kind is None:  # recognised by its name: the modality reads the text
            try:
                return name, modality(name).file_value(read_checked(path, expected))
            except ValueError as err:
                raise FileCheckError(str(err)) from None
        problem = checked_problem(path, expected, name)
        if problem:
            raise FileCheckError(problem)
        return name, read_checked(path, expected)
    except FileCheckError as err:
        raise ValueError(f"input file {path!r} {err}") from None
