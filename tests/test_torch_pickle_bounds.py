"""The ``.pth`` reader is bounded: crafted files fail fast with its documented errors.

Each attack file is built here, opcode by opcode (no PyTorch): broadcast and
self-overlapping views, one storage behind many tensors, a pickle DAG that doubles
at each level, compressed and overlapping ZIP members, a huge memo index, deep
nesting, and files that trip the low-level parsers (truncation, bad UTF-8, wrong
argument counts, huge ints). Before the bounds these took the reader past 3 GiB or
raised EOFError / BadZipFile / OverflowError / TypeError / RecursionError / MemoryError.
"""

import io
import pickle
import random
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmkeras.weights import torch_pickle
from mmkeras.weights.torch_pickle import load_pth

PTH = Path(__file__).parent / "fixtures" / "pth"
DOCUMENTED = (ValueError, pickle.UnpicklingError)


# ---- a PyTorch-free checkpoint writer (protocol 2 opcodes, as torch.save writes) --------

def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _data(value):
    """Opcodes that push a plain value (int, str, tuple, None): a pickle without PROTO and STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def tensor(key, numel, shape, stride, offset=0, storage="FloatStorage"):
    """Opcodes that push ``_rebuild_tensor_v2(storage key, offset, shape, stride, ...)``."""
    pid = b"(" + _data("storage") + _global("torch", storage) + _data(key) + _data("cpu") + _data(numel) + b"tQ"
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _data(offset) + _data(tuple(shape))
            + _data(tuple(stride)) + b"\x89" + _global("collections", "OrderedDict") + b")R" + b"tR")


def state_dict(entries):
    """A whole pickle: ``{name: value}`` from ``(name, opcodes pushing the value)`` pairs."""
    return b"\x80\x02}(" + b"".join(_data(name) + value for name, value in entries) + b"u."


def zip_checkpoint(path, pkl, storages=(), compression=zipfile.ZIP_STORED, byteorder="little"):
    """A torch zip checkpoint: ``archive/data.pkl``, ``archive/byteorder``, ``archive/data/<key>``."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", byteorder)
        for key, raw in dict(storages).items():
            z.writestr(f"archive/data/{key}", raw)
    return path


def legacy_checkpoint(path, pkl, storages=()):
    """A legacy (PyTorch < 1.6) stream: magic, protocol, sys info, the pickle, keys, storages."""
    storages = dict(storages)
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"little_endian": True}, protocol=2), pkl, pickle.dumps(list(storages), protocol=2)]
    for raw in storages.values():
        parts += [struct.pack("<q", len(raw) // 4), raw]  # float32 storages
    path.write_bytes(b"".join(parts))
    return path


def floats(n):
    return np.arange(n, dtype="<f4").tobytes()


def _refused(path, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        load_pth(path)
    assert str(info.value).startswith(f"{path}: "), str(info.value)  # names the file first
    return info.value


# ---- the writer is right, and shared storages stay shared ------------------------------

@pytest.mark.parametrize("write", [zip_checkpoint, legacy_checkpoint])
def test_one_storage_behind_64_tensors_is_one_array(tmp_path, write):
    # The 66 KB attack: one 64 KB storage referenced 64 times (full, transposed and sliced views).
    n = 16384
    entries = [(f"t{i}", tensor("0", n, (128, 128), (128, 1) if i % 2 else (1, 128))) for i in range(62)]
    entries += [("slice", tensor("0", n, (2, 3), (128, 1), offset=5)), ("flat", tensor("0", n, (n,), (1,)))]
    state = load_pth(write(tmp_path / "shared.pth", state_dict(entries), {"0": floats(n)}))
    base = np.arange(n, dtype=np.float32)
    np.testing.assert_array_equal(state["t0"], base.reshape(128, 128).T)
    np.testing.assert_array_equal(state["t1"], base.reshape(128, 128))
    np.testing.assert_array_equal(state["slice"], [[5, 6, 7], [133, 134, 135]])
    assert all(np.shares_memory(a, state["flat"]) for a in state.values())  # 64 KB held, not 64 x 64 KB


def test_big_endian_storages_are_swapped(tmp_path):
    pkl = state_dict([("w", tensor("0", 3, (3,), (1,)))])
    path = zip_checkpoint(tmp_path / "be.pth", pkl, {"0": np.array([1.5, -2, 3], ">f4").tobytes()}, byteorder="big")
    np.testing.assert_array_equal(load_pth(path)["w"], [1.5, -2, 3])


# ---- views that would expand a storage -------------------------------------------------

@pytest.mark.parametrize("shape,stride,what", [
    ((65536, 65536), (0, 0), "stride 0 .a broadcast view. on a dimension of size 65536"),  # the 637-byte file
    ((4, 3), (1, 0), "stride 0 .a broadcast view. on a dimension of size 3"),
    ((8192, 8192), (1, 1), "stride 1 on a dimension of size 8192"),  # every row the same 8192 floats
    ((100, 50), (10, 1), "stride 10 on a dimension of size 100"),
])
def test_views_that_overlap_themselves_are_refused(tmp_path, shape, stride, what):
    path = zip_checkpoint(tmp_path / "expand.pth", state_dict([("w", tensor("0", 16384, shape, stride))]),
                          {"0": floats(16384)})
    _refused(path, ValueError, rf"overlaps itself \({what}\)")


def test_stride_zero_on_a_length_one_dimension_is_fine(tmp_path):
    path = zip_checkpoint(tmp_path / "ok.pth", state_dict([("w", tensor("0", 4, (1, 4), (0, 1)))]), {"0": floats(4)})
    np.testing.assert_array_equal(load_pth(path)["w"], [[0, 1, 2, 3]])


def test_a_view_past_its_storage_is_refused(tmp_path):
    path = zip_checkpoint(tmp_path / "past.pth", state_dict([("w", tensor("0", 4, (2, 2), (2, 1), offset=1))]),
                          {"0": floats(4)})
    _refused(path, ValueError, "reads past its storage of 4 elements")


# ---- the pickle: DAGs, memo, depth, object count, opcodes -------------------------------

def test_a_doubling_list_dag_is_rebuilt_once_per_object(tmp_path):
    # The 1 KB attack: level k+1 = [level k, level k], 60 levels = 2**60 leaves if re-expanded.
    ops = [tensor("0", 4, (4,), (1,)), b"r\x00\x00\x00\x000"]  # LONG_BINPUT 0, POP
    for level in range(60):
        ops.append(b"(j" + struct.pack("<I", level) + b"j" + struct.pack("<I", level) + b"lr"
                   + struct.pack("<I", level + 1) + b"0")  # MARK GET GET LIST PUT POP
    pkl = b"\x80\x02}(" + _data("dag") + b"".join(ops) + b"j" + struct.pack("<I", 60) + b"u."
    path = zip_checkpoint(tmp_path / "dag.pth", pkl, {"0": floats(4)})
    start = time.perf_counter()
    top = load_pth(path)["dag"]
    assert time.perf_counter() - start < 5
    node = top
    for _ in range(60):
        assert node[0] is node[1]
        node = node[0]
    np.testing.assert_array_equal(node, [0, 1, 2, 3])


def test_a_list_holding_itself_is_rebuilt(tmp_path):
    pkl = b"\x80\x02]q\x00h\x00a."  # EMPTY_LIST PUT 0, GET 0, APPEND
    top = load_pth(zip_checkpoint(tmp_path / "cycle.pth", pkl))
    assert top[0] is top


def test_a_huge_memo_index_is_refused_before_loading(tmp_path):
    # LONG_BINPUT 2**31 - 1: the C unpickler would size its memo to 2**32 pointers (32 GiB).
    path = zip_checkpoint(tmp_path / "memo.pth", b"\x80\x02]r\xff\xff\xff\x7f.")
    _refused(path, pickle.UnpicklingError, r"memo index 2147483647 at byte 3 exceeds the bound 1048576")


def test_deep_nesting_is_refused(tmp_path):
    depth = 20000  # pushed flat, folded with APPEND: the unpickler never recurses, our walk would
    path = zip_checkpoint(tmp_path / "deep.pth", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    _refused(path, ValueError, "containers nest deeper than 100 levels")


def test_the_number_of_objects_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_pickle, "MAX_OBJECTS", 1000)
    path = zip_checkpoint(tmp_path / "many.pth", b"\x80\x02]" + b"]a" * 1000 + b".")
    _refused(path, pickle.UnpicklingError, "makes more than 1000 objects")


@pytest.mark.parametrize("payload,opcode", [
    (b"\x80\x04\x8f.", "EMPTY_SET"),  # 216 bytes per 1-byte opcode
    (b"\x80\x02\x82\x01.", "EXT1"),  # the copyreg extension registry: another way to reach a global
    (b"(ios\nsystem\n.", "INST"),
])
def test_opcodes_outside_the_allow_list_are_refused(tmp_path, payload, opcode):
    _refused(zip_checkpoint(tmp_path / "op.pth", payload), pickle.UnpicklingError, f"refusing pickle opcode {opcode}")


# ---- the archive -----------------------------------------------------------------------

def test_compressed_members_are_refused(tmp_path):
    # The 2.6 MB attack deflated a multi-GB data.pkl; a stored member cannot expand.
    pkl = b"\x80\x02X" + struct.pack("<I", 1 << 20) + b"a" * (1 << 20) + b"."
    path = zip_checkpoint(tmp_path / "deflated.pth", pkl, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10_000
    _refused(path, ValueError, r"member 'archive/data.pkl' is compressed \(method 8\)")


def _duplicate_central_entry(raw, name, copies):
    """Adds ``copies`` central-directory entries that point at ``name``'s bytes (overlapping members)."""
    eocd = raw.rindex(b"PK\x05\x06")
    count, cd_size, cd_start = struct.unpack("<HII", raw[eocd + 10:eocd + 20])
    directory = raw[cd_start:cd_start + cd_size]
    at = directory.index(name.encode()) - 46
    length = 46 + sum(struct.unpack("<HHH", directory[at + 28:at + 34]))
    entry = directory[at:at + length]
    extra = b"".join(entry.replace(name.encode(), f"{name[:-1]}{chr(65 + i)}".encode()) for i in range(copies))
    tail = raw[eocd:eocd + 8] + struct.pack("<HHII", count + copies, count + copies, cd_size + len(extra), cd_start)
    return raw[:cd_start] + directory + extra + tail + raw[eocd + 20:]


def test_overlapping_members_a_zip_bomb_are_refused(tmp_path):
    path = zip_checkpoint(tmp_path / "bomb.pth", state_dict([]), {"0": floats(4096)})
    path.write_bytes(_duplicate_central_entry(path.read_bytes(), "archive/data/0", 20))
    _refused(path, ValueError, r"members claim \d+ bytes in a \d+-byte archive \(overlapping members")


# ---- every low-level failure is a documented error that names the file -----------------

@pytest.mark.parametrize("payload,error,pattern", [
    (b"\x80\x02}(", ValueError, "pickle exhausted before seeing STOP"),  # EOFError
    (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", ValueError, "utf-8"),  # UnicodeDecodeError
    (state_dict([("w", tensor("0", 4, (1 << 70,), (1,)))]), pickle.UnpicklingError, "non-negative ints"),
    (b"\x80\x02" + _global("torch._utils", "_rebuild_tensor_v2") + b")R.", ValueError, "TypeError"),
    (b"\x80\x02" + _global("collections", "OrderedDict") + b"K\x01\x85R.", ValueError, "TypeError"),
    (b"\x80\x02h\x05.", pickle.UnpicklingError, "malformed pickle: Memo value not found at index 5"),
    (b"\x80\x02" + _global("os", "system") + b".", pickle.UnpicklingError, "refusing to load global os.system"),
])
def test_crafted_pickles_raise_documented_errors(tmp_path, payload, error, pattern):
    _refused(zip_checkpoint(tmp_path / "bad.pth", payload, {"0": floats(4)}), error, pattern)


def test_a_truncated_archive_is_a_value_error(tmp_path):
    raw = (PTH / "state_dict.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[:-30])  # the end-of-directory record cut: BadZipFile before
    _refused(tmp_path / "cut.pth", DOCUMENTED, "checkpoint|pickle")


@pytest.mark.parametrize("name", ["state_dict.pth", "state_dict_legacy.pth"])
def test_corrupted_real_checkpoints_raise_only_documented_errors(tmp_path, name):
    """300 truncations and byte flips of files PyTorch wrote: each loads or fails with a documented error."""
    raw = (PTH / name).read_bytes()
    rng = random.Random(0)
    for trial in range(300):
        data = bytearray(raw)
        if trial % 3 == 0:
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / f"mutant{trial}.pth"
        path.write_bytes(bytes(data))
        try:
            load_pth(path)
        except DOCUMENTED as e:
            assert str(e).startswith(f"{path}: "), (trial, str(e))
        path.unlink()


def test_the_restricted_unpickler_alone_still_reads_plain_data():
    assert torch_pickle.RestrictedUnpickler(io.BytesIO(pickle.dumps([1, "a"])), None, "mem").load() == [1, "a"]
