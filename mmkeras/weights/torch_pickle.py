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
"""

import collections
import io
import os
import pickle
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
    """One flat storage; ``array`` is filled when its bytes are read."""

    __slots__ = ("type", "numel", "array")

    def __init__(self, storage_type, numel):
        self.type = storage_type
        self.numel = numel
        self.array = None

    def fill(self, raw, big_endian=False):
        if len(raw) != self.numel * self.type.itemsize:
            raise ValueError(f"storage holds {len(raw)} bytes, expected {self.numel} x {self.type.itemsize}")
        if self.type.dtype == "bfloat16":
            words = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
            self.array = (words << 16).view(np.float32)
        else:
            dtype = np.dtype(self.type.dtype).newbyteorder(">" if big_endian else "<")
            self.array = np.frombuffer(raw, dtype=dtype).astype(np.dtype(self.type.dtype), copy=False)


class _TensorRef(_Frozen):
    """A tensor view (offset, shape, strides in elements) of a storage, materialised later."""

    __slots__ = ("storage", "offset", "shape", "strides")

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def to_numpy(self):
        storage = self.storage.array
        if 0 in self.shape:
            return np.zeros(self.shape, dtype=storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides))
        if last >= storage.size:
            raise ValueError(f"tensor of shape {self.shape} at offset {self.offset} reads past its "
                             f"storage of {storage.size} elements")
        view = np.lib.stride_tricks.as_strided(
            storage[self.offset:], shape=self.shape, strides=[s * storage.itemsize for s in self.strides],
            writeable=False)
        return np.array(view, order="C", copy=True)  # own, contiguous, writeable memory


def _int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise pickle.UnpicklingError(f"tensor {what} must be a tuple of non-negative ints, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    # _rebuild_tensor_v2 also passes requires_grad, backward hooks and metadata: not needed here.
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor storage must be a persistent storage, got {type(storage).__name__}")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise pickle.UnpicklingError(f"tensor storage offset must be a non-negative int, got {storage_offset!r}")
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
        raise pickle.UnpicklingError(
            f"{self._where}: refusing to load global {module}.{name}: only tensors (torch storages, "
            "_rebuild_tensor_v2, OrderedDict) may appear in a weights file. A pickled module or "
            "object is not supported; save its state_dict() instead")

    def persistent_load(self, pid):
        if self._storages is None:
            raise pickle.UnpicklingError(f"{self._where}: unexpected persistent id {pid!r}")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._where}: unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self._where}: storage type must be a torch storage class, "
                                         f"got {storage_type!r}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"{self._where}: bad storage key {key!r} or size {numel!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError(f"{self._where}: storage views (PyTorch < 0.4 files) are not supported")
        return self._storages(storage_type, key, numel)


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_zip(archive, where):
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise ValueError(f"{where}: a PyTorch zip checkpoint holds one <name>/data.pkl; found {pkl or 'none'}")
    prefix = pkl[0][: -len("data.pkl")]
    big_endian = False
    if prefix + "byteorder" in archive.namelist():
        big_endian = archive.read(prefix + "byteorder").strip() == b"big"
    storages = {}

    def storage(storage_type, key, numel):
        if key not in storages:
            record = prefix + "data/" + key
            if record not in archive.namelist():
                raise pickle.UnpicklingError(f"{where}: storage record {record} is missing")
            if archive.getinfo(record).file_size != numel * storage_type.itemsize:  # checked before reading
                raise ValueError(f"{where}: storage {key!r} should hold {numel} x {storage_type.itemsize} bytes, "
                                 f"the archive holds {archive.getinfo(record).file_size}")
            storages[key] = _Storage(storage_type, numel)
            storages[key].fill(archive.read(record), big_endian)
        return storages[key]

    return RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), storage, where).load()


def _load_legacy(f, where):
    header = [RestrictedUnpickler(f, None, where).load() for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"{where}: not a PyTorch checkpoint (no zip archive, wrong legacy magic number)")
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"{where}: unsupported legacy protocol version {protocol!r}")
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    storages = {}

    def storage(storage_type, key, numel):
        if key not in storages:
            storages[key] = _Storage(storage_type, numel)
        return storages[key]

    result = RestrictedUnpickler(f, storage, where).load()
    keys = RestrictedUnpickler(f, None, where).load()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise ValueError(f"{where}: storage key list does not match the storages the pickle uses")
    for key in keys:
        count = f.read(8)
        if len(count) != 8:
            raise ValueError(f"{where}: file ends before storage {key!r}")
        (numel,) = struct.unpack(">q" if big_endian else "<q", count)
        target = storages[key]
        if numel != target.numel:
            raise ValueError(f"{where}: storage {key!r} holds {numel} elements, the pickle says {target.numel}")
        nbytes = numel * target.type.itemsize
        if nbytes > os.fstat(f.fileno()).st_size - f.tell():  # checked before allocating
            raise ValueError(f"{where}: storage {key!r} of {nbytes} bytes runs past the end of the file")
        target.fill(f.read(nbytes), big_endian)
    return result


def load_pth(path):
    """Loads a PyTorch checkpoint's contents, tensors as numpy arrays, without PyTorch.

    Only plain containers, numbers, strings and tensors are rebuilt; a file that
    names any other global (a pickled ``nn.Module``, ``os.system``, ...) raises
    :class:`pickle.UnpicklingError` and nothing in it runs.

    Args:
        path: str or path-like. A ``.pth`` / ``.pt`` file (zip or legacy format).

    Returns:
        The unpickled object (usually an ``OrderedDict`` state dict) with every
        tensor replaced by a numpy array (bfloat16 widened to float32).

    Raises:
        pickle.UnpicklingError: the file names a global outside the allow-list.
        ValueError: the file is not a PyTorch checkpoint or its storages are inconsistent.

    Example:
    ```python
    state = load_pth("efficientnet-lite0-57934424.pth")
    state["_conv_stem.weight"].shape  # (32, 3, 3, 3)
    ```
    """
    where = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _materialise(_load_zip(archive, where))
    with open(path, "rb") as f:
        return _materialise(_load_legacy(f, where))


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
