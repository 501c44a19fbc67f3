"""Reads PyTorch ``.pth`` checkpoints into numpy arrays without PyTorch, and without running code.

A ``.pth`` file is a pickle whose tensors point at raw storages: either a zip
(``<name>/data.pkl`` + ``<name>/data/<key>``, PyTorch >= 1.6) or the legacy stream
(magic number, protocol, system info, the pickle, the storage keys, then each
storage as an int64 element count and its bytes). Unpickling such a file with the
general machinery can run any code it names, so :class:`RestrictedUnpickler`
resolves only the few globals a tensor checkpoint needs (``OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and friends, ``torch.<Type>Storage``) to
stand-ins defined here; any other global raises :class:`pickle.UnpicklingError`
before anything is called.

A checkpoint is untrusted input, so reading one is bounded as well as code-free:

- ZIP members must be stored (uncompressed, as ``torch.save`` writes them), each
  one's size must match its header, and together they cannot claim more bytes
  than the archive holds: no zip bomb, no overlapping members;
- the pickle is scanned opcode by opcode before it is loaded: only the opcodes a
  tensor checkpoint uses, memo indices below :data:`MAX_MEMO`, at most
  :data:`MAX_OBJECTS` objects; its containers nest at most :data:`MAX_DEPTH` deep;
- every storage becomes one numpy array, read once however many tensors use it,
  and each tensor is a view of it (no copy): a view must stay inside its storage and
  not overlap itself (a stride of 0 on a dimension longer than 1 is refused), so the
  arrays returned never hold more bytes than the file's storages (twice that for
  bfloat16, widened to float32), and a shared object is rebuilt once.

Any failure raises :class:`pickle.UnpicklingError` (code or an opcode outside the
allow-list) or :class:`ValueError` (anything else), naming the file and the problem.
"""

import collections
import io
import os
import pickle
import pickletools
import reprlib
import struct
import zipfile

import numpy as np

# Storage classes a tensor checkpoint names -> numpy dtype of one element.
# bfloat16 has no numpy dtype: its 16-bit words are widened to float32 (exact).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Bounds on the pickle itself. A large model's state dict has ~10 objects per tensor
# (EfficientNet-Lite0: ~2,800 memo entries, ~11,000 opcodes).
MAX_MEMO = 1 << 20  # the C unpickler sizes its memo by the largest index: PUT 2**31 = 16 GiB
MAX_OBJECTS = 2_000_000  # ~100 bytes each: <= 200 MB of Python objects
MAX_DEPTH = 100  # a state dict nests 2-3 deep

# Opcodes a tensor checkpoint (or any plain-data pickle) uses. Left out: INST, OBJ,
# NEWOBJ(_EX), EXT1/2/4 (other ways to call code), sets and frozensets (216 bytes per
# 2-byte opcode), out-of-band buffers, and the text PERSID.
_ALLOWED_OPCODES = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK DUP PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
    GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2
    LONG LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE
    SHORT_BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2
    TUPLE3 EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM SETITEMS
""".split())
# Opcodes that only move or file objects already made: not counted against MAX_OBJECTS.
_NO_NEW_OBJECT = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK DUP PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
    APPEND APPENDS SETITEM SETITEMS BUILD NONE NEWTRUE NEWFALSE
""".split())
_MEMO_INDEX = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 160


def _show(value):
    """A short repr for error messages (a crafted value can be huge, deep or a 10**5000 int)."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):
        return f"<{type(value).__name__} too large to show>"


def _scan_pickle(f, where):
    """Checks the opcodes of the pickle at ``f``'s position (consumed) against the bounds above.

    ``pickletools.genops`` only decodes opcodes and their arguments, building nothing.
    """
    objects = 0
    for op, arg, pos in pickletools.genops(f):
        if op.name == "GLOBAL":  # named in the opcode: refused here with the reason, before anything loads
            module, _, name = arg.partition(" ")
            if (module, name) not in _ALLOWED_CALLABLES and not (module == "torch" and name in _STORAGE_DTYPES):
                raise _refused_global(where, module, name)
        if op.name not in _ALLOWED_OPCODES:
            raise pickle.UnpicklingError(f"{where}: refusing pickle opcode {op.name} at byte {pos}: only plain "
                                         f"data and tensors may appear in a weights file. {_SAVE_STATE_DICT}")
        if op.name in _MEMO_INDEX and not 0 <= arg < MAX_MEMO:
            raise pickle.UnpicklingError(f"{where}: memo index {arg} at byte {pos} exceeds the bound {MAX_MEMO}")
        if op.name not in _NO_NEW_OBJECT:
            objects += 1
            if objects > MAX_OBJECTS:
                raise pickle.UnpicklingError(f"{where}: the pickle makes more than {MAX_OBJECTS} objects")


class _Frozen:
    """Base of the stand-ins a checkpoint can reach: no attributes can be set from a pickle."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refusing to set state on {type(self).__name__}")


class _StorageType(_Frozen):
    __slots__ = ("name", "itemsize", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]
        self.itemsize = 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage(_Frozen):
    """One flat storage; ``array`` is filled (once) when its bytes are read."""

    __slots__ = ("type", "numel", "array")

    def __init__(self, storage_type, numel):
        self.type = storage_type
        self.numel = numel
        self.array = None

    def read(self, stream, where, key, big_endian=False):
        """Reads the storage's bytes from ``stream`` straight into its one array, 1 MiB at a time."""
        bfloat16 = self.type.dtype == "bfloat16"
        array = np.empty(self.numel, dtype=np.uint16 if bfloat16 else self.type.dtype)
        buffer = memoryview(array).cast("B")
        done = 0
        while done < len(buffer):
            n = stream.readinto(buffer[done:done + (1 << 20)])
            if not n:
                raise ValueError(f"{where}: storage {key!r} ends after {done} of {len(buffer)} bytes")
            done += n
        if big_endian:
            array.byteswap(inplace=True)
        # bfloat16 words are the top halves of float32s: widen exactly (twice the bytes).
        self.array = (array.astype(np.uint32) << 16).view(np.float32) if bfloat16 else array


class _TensorRef(_Frozen):
    """A tensor view (offset, shape, strides in elements) of a storage, materialised later."""

    __slots__ = ("storage", "offset", "shape", "strides")

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def to_numpy(self, where):
        """A numpy view of the storage's array: it shares memory with every other view of the storage."""
        storage = self.storage.array
        if 0 in self.shape:
            return np.empty(self.shape, dtype=storage.dtype)
        # Non-overlapping: with the dimensions sorted by stride, each stride must step past
        # everything the smaller ones reach. A stride 0 (a broadcast view) fails this too.
        reach = 0
        for stride, n in sorted((s, n) for n, s in zip(self.shape, self.strides) if n > 1):
            if stride <= reach:
                what = "stride 0 (a broadcast view)" if stride == 0 else f"stride {stride}"
                raise ValueError(f"{where}: tensor of shape {self.shape} with strides {self.strides} overlaps "
                                 f"itself ({what} on a dimension of size {n}); a checkpoint tensor "
                                 "covers each storage element at most once")
            reach += (n - 1) * stride
        if self.offset + reach >= storage.size:
            raise ValueError(f"{where}: tensor of shape {self.shape} at offset {self.offset} reads past its "
                             f"storage of {storage.size} elements")
        return np.lib.stride_tricks.as_strided(
            storage[self.offset:], shape=self.shape, strides=[s * storage.itemsize for s in self.strides])


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and 0 <= v < 1 << 62 for v in value):
        raise pickle.UnpicklingError(f"tensor {what} must be a tuple of non-negative ints, got {_show(value)}")
    if len(value) > 32:
        raise pickle.UnpicklingError(f"tensor {what} has {len(value)} dimensions; at most 32 are supported")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    # _rebuild_tensor_v2 also passes requires_grad, backward hooks and metadata: not needed here.
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor storage must be a persistent storage, got {type(storage).__name__}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise pickle.UnpicklingError(f"tensor storage offset must be a non-negative int, got {_show(storage_offset)}")
    shape, strides = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"tensor size {shape} and stride {strides} differ in length")
    return _TensorRef(storage, storage_offset, shape, strides)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *_ignored):
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


class _Callable(_Frozen):
    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args):
        return self.fn(*args)


def _ordered_dict(*args):
    # Only a (key, value) iterable, as the pickle of an OrderedDict passes; no keyword tricks.
    return collections.OrderedDict(*args)


_ALLOWED_CALLABLES = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


_SAVE_STATE_DICT = "A pickled module or object is not supported; save its state_dict() instead"


def _refused_global(where, module, name):
    return pickle.UnpicklingError(
        f"{where}: refusing to load global {_show(module)[1:-1]}.{_show(name)[1:-1]}: only tensors (torch "
        f"storages, _rebuild_tensor_v2, OrderedDict) may appear in a weights file. {_SAVE_STATE_DICT}")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds tensors and refuses every other global.

    Args:
        file: binary file object positioned at the pickle.
        storages: callable ``(storage_type, key, numel) -> _Storage`` for persistent ids,
            or None for pickles that must hold no tensors (the legacy header).
        where: str. Names the file in error messages.

    Example:
    ```python
    RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": 1})), None, "x.pth").load()  # {"a": 1}
    ```
    """

    def __init__(self, file, storages, where):
        super().__init__(file)
        self._storages = storages
        self._where = where

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_CALLABLES and self._storages is not None:
            return _Callable(f"{module}.{name}", _ALLOWED_CALLABLES[module, name])
        if module == "torch" and name in _STORAGE_DTYPES and self._storages is not None:
            return _StorageType(name)
        raise _refused_global(self._where, module, name)

    def persistent_load(self, pid):
        if self._storages is None:
            raise pickle.UnpicklingError(f"{self._where}: unexpected persistent id {_show(pid)}")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._where}: unsupported persistent id {_show(pid)}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self._where}: storage type must be a torch storage class, "
                                         f"got {_show(storage_type)}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"{self._where}: bad storage key {_show(key)} or size {_show(numel)}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError(f"{self._where}: storage views (PyTorch < 0.4 files) are not supported")
        return self._storages(storage_type, key, numel)


def _materialise(obj, where, done=None, depth=0):
    """Replaces tensors with numpy views; an object the pickle shares (memo) is rebuilt once."""
    done = {} if done is None else done
    if id(obj) in done:
        return done[id(obj)]
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: containers nest deeper than {MAX_DEPTH} levels")
    if isinstance(obj, _TensorRef):
        done[id(obj)] = obj.to_numpy(where)
    elif isinstance(obj, dict):
        out = done[id(obj)] = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, where, done, depth + 1)
    elif isinstance(obj, list):
        out = done[id(obj)] = []  # registered first: a list may hold itself
        out.extend(_materialise(v, where, done, depth + 1) for v in obj)
    elif isinstance(obj, tuple):
        done[id(obj)] = tuple(_materialise(v, where, done, depth + 1) for v in obj)
    else:
        return obj
    return done[id(obj)]


def _load_pickle(f, storages, where):
    """Scans, then loads, the pickle at ``f``'s position; leaves ``f`` just past it."""
    start = f.tell()
    _scan_pickle(f, where)
    f.seek(start)
    return RestrictedUnpickler(f, storages, where).load()


def _check_members(archive, where):
    """Refuses compressed members, sizes that differ from their headers, and zip bombs."""
    total = 0
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{where}: member {_show(info.filename)} is compressed (method {info.compress_type}); "
                             "torch.save stores members uncompressed, and a compressed one could expand "
                             "without bound")
        if info.file_size != info.compress_size:
            raise ValueError(f"{where}: stored member {_show(info.filename)} claims {info.file_size} bytes "
                             f"but occupies {info.compress_size}")
        total += info.file_size
    size = os.fstat(archive.fp.fileno()).st_size
    if total > size:
        raise ValueError(f"{where}: members claim {total} bytes in a {size}-byte archive (overlapping "
                         "members: a zip bomb)")


def _load_zip(archive, where):
    _check_members(archive, where)
    names = set(archive.namelist())
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise ValueError(f"{where}: a PyTorch zip checkpoint holds one <name>/data.pkl; found "
                         f"{_show(pkl) if pkl else 'none'}")
    prefix = pkl[0][: -len("data.pkl")]
    big_endian = False
    if prefix + "byteorder" in names:
        big_endian = archive.read(prefix + "byteorder")[:16].strip() == b"big"
    storages = {}

    def storage(storage_type, key, numel):
        if key not in storages:
            record = prefix + "data/" + key
            if record not in names:
                raise pickle.UnpicklingError(f"{where}: storage record {_show(record)} is missing")
            if archive.getinfo(record).file_size != numel * storage_type.itemsize:  # checked before reading
                raise ValueError(f"{where}: storage {_show(key)} should hold {numel} x {storage_type.itemsize} "
                                 f"bytes, the archive holds {archive.getinfo(record).file_size}")
            storages[key] = _Storage(storage_type, numel)
            with archive.open(record) as member:
                storages[key].read(member, where, key, big_endian)
        return storages[key]

    return _load_pickle(io.BytesIO(archive.read(pkl[0])), storage, where)


def _load_legacy(f, where):
    header = [_load_pickle(f, None, where) for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"{where}: not a PyTorch checkpoint (no zip archive, wrong legacy magic number)")
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"{where}: unsupported legacy protocol version {_show(protocol)}")
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    storages = {}

    def storage(storage_type, key, numel):
        if key not in storages:
            storages[key] = _Storage(storage_type, numel)
        return storages[key]

    result = _load_pickle(f, storage, where)
    keys = _load_pickle(f, None, where)
    if not isinstance(keys, list) or set(keys) != set(storages) or len(keys) != len(storages):
        raise ValueError(f"{where}: storage key list does not match the storages the pickle uses")
    size = os.fstat(f.fileno()).st_size
    for key in keys:
        count = f.read(8)
        if len(count) != 8:
            raise ValueError(f"{where}: file ends before storage {_show(key)}")
        (numel,) = struct.unpack(">q" if big_endian else "<q", count)
        target = storages[key]
        if numel != target.numel:
            raise ValueError(f"{where}: storage {_show(key)} holds {numel} elements, the pickle says {target.numel}")
        if numel * target.type.itemsize > size - f.tell():  # checked before allocating
            raise ValueError(f"{where}: storage {_show(key)} of {numel * target.type.itemsize} bytes runs past "
                             "the end of the file")
        target.read(f, where, key, big_endian)
    return result


def _load(f, where):
    if zipfile.is_zipfile(f):
        with zipfile.ZipFile(f) as archive:
            return _materialise(_load_zip(archive, where), where)
    f.seek(0)
    return _materialise(_load_legacy(f, where), where)


def load_pth(path):
    """Loads a PyTorch checkpoint's contents, tensors as numpy arrays, without PyTorch.

    Only plain containers, numbers, strings and tensors are rebuilt; a file that
    names any other global (a pickled ``nn.Module``, ``os.system``, ...) raises
    :class:`pickle.UnpicklingError` and nothing in it runs. Reading is bounded
    (see the module docstring): the arrays hold no more bytes than the file's
    storages, and a crafted file fails fast with one of the two errors below.

    Args:
        path: str or path-like. A ``.pth`` / ``.pt`` file (zip or legacy format).

    Returns:
        The unpickled object (usually an ``OrderedDict`` state dict) with every
        tensor replaced by a numpy array (bfloat16 widened to float32). Tensors that
        share a storage are views of one array (as in PyTorch): copy one before
        changing it in place if the others must not change.

    Raises:
        pickle.UnpicklingError: the file names a global or a pickle opcode outside the
            allow-list, or its pickle is malformed or exceeds a bound.
        ValueError: the file is not a PyTorch checkpoint, is truncated or corrupt, or
            its archive members, storages or tensors are inconsistent or exceed a bound.
        OSError: the file cannot be opened.

    Example:
    ```python
    state = load_pth("efficientnet-lite0-57934424.pth")
    state["_conv_stem.weight"].shape  # (32, 3, 3, 3)
    ```
    """
    where = str(path)
    with open(path, "rb") as f:
        try:
            return _load(f, where)
        except pickle.UnpicklingError as e:
            if str(e).startswith(where + ":"):
                raise
            raise pickle.UnpicklingError(f"{where}: malformed pickle: {str(e)[:300]}") from None
        except ValueError as e:
            if str(e).startswith(where + ":"):
                raise
            raise ValueError(f"{where}: not a valid PyTorch checkpoint: {str(e)[:300]}") from None
        except Exception as e:  # noqa: BLE001 - every low-level failure of a crafted file becomes one error
            # EOFError, zipfile.BadZipFile, OverflowError, TypeError, RecursionError, MemoryError,
            # struct.error, UnicodeDecodeError, KeyError, OSError on a bad seek, ...
            raise ValueError(f"{where}: not a valid PyTorch checkpoint ({type(e).__name__}: "
                             f"{str(e)[:300]})") from None


def load_state_dict(path):
    """Loads a checkpoint that is a flat mapping of names to tensors, as ``{name: ndarray}``.

    Accepts a bare state dict or one nested under ``"state_dict"`` / ``"model"``.

    Args:
        path: str or path-like. The ``.pth`` file.

    Returns:
        dict: parameter name -> numpy array, in the file's order.

    Raises:
        ValueError: the checkpoint holds no such mapping (names the file and what it found).

    Example:
    ```python
    weights = load_state_dict("model.pth")  # {"fc.weight": array(...), ...}
    ```
    """
    obj = load_pth(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (names -> tensors), got {type(obj).__name__}")
    return dict(obj)
