"""Reads the weights and layer list of an ONNX file into numpy without the ``onnx`` package or a runtime.

An ``.onnx`` file is one protobuf message (``ModelProto``). This reader decodes
the protobuf wire format itself, and only the fields a weights converter needs:

- ``ModelProto.graph`` (field 7) -> ``GraphProto``: ``node`` (1), ``initializer`` (5);
- ``NodeProto``: ``input`` (1), ``output`` (2), ``name`` (3), ``op_type`` (4), ``attribute`` (5);
- ``AttributeProto``: ``name`` (1), ``f`` (2), ``i`` (3), ``floats`` (7), ``ints`` (8);
- ``TensorProto``: ``dims`` (1), ``data_type`` (2), ``float_data`` (4), ``int64_data`` (7),
  ``name`` (8), ``raw_data`` (9); float32 and int64 tensors only.

Every other field is skipped by its wire type, never interpreted: the file runs
nothing and names nothing outside itself (an initializer stored in an external
file, ``data_location`` 1, is refused). It is untrusted input, so reading is
bounded: the file size (:data:`MAX_BYTES`), every length against the bytes left in
its message, varints to 10 bytes, a tensor's element count against the bytes it
holds (so the arrays never exceed the file), and at most :data:`MAX_NODES` nodes.
Any failure raises :class:`ValueError` naming the file and the problem.
"""

import dataclasses
import os
import struct

import numpy as np

MAX_BYTES = 256 << 20  # an ONNX model file this reader is meant for is a few MB
MAX_NODES = 100_000
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_DTYPES = {_FLOAT: np.dtype("<f4"), _INT64: np.dtype("<i8")}
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclasses.dataclass(frozen=True)
class OnnxNode:
    """One graph node: its operator, input and output names and attributes (numbers or tuples)."""

    op_type: str
    inputs: tuple
    outputs: tuple
    attributes: dict
    name: str = ""


@dataclasses.dataclass(frozen=True)
class OnnxGraph:
    """The initializers (``{name: ndarray}``) and the nodes, in file order, of an ONNX graph."""

    initializers: dict
    nodes: tuple

    def nodes_of(self, op_type):
        """The nodes of one operator type, in graph order."""
        return [n for n in self.nodes if n.op_type == op_type]


class _Error(ValueError):
    pass


def _varint(buf, pos, end):
    value = shift = 0
    for _ in range(10):
        if pos >= end:
            raise _Error("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Error("varint longer than 10 bytes")


def _fields(buf, start, end):
    """Yields ``(field number, wire type, value)``: an int for varints/fixed, ``(start, end)`` for bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise _Error(f"field {number} runs past its message")
            value, pos = (pos, pos + size), pos + size
        elif wire == _BYTES:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise _Error(f"field {number} claims {length} bytes, {end - pos} are left in its message")
            value, pos = (pos, pos + length), pos + length
        else:
            raise _Error(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _text(buf, span):
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Error("a name is not UTF-8") from None


def _packed_varints(buf, wire, value):
    if wire == _VARINT:
        return [value]
    out, pos = [], value[0]
    while pos < value[1]:
        v, pos = _varint(buf, pos, value[1])
        out.append(v)
    return out


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor(buf, start, end):
    dims, dtype, name, raw, floats, ints = [], None, "", None, [], []
    for number, wire, value in _fields(buf, start, end):
        if number == 1:
            dims += [_signed(v) for v in _packed_varints(buf, wire, value)]
        elif number == 2 and wire == _VARINT:
            dtype = value
        elif number == 4:
            if wire in (_BYTES, _FIXED32):  # packed or one by one: both are float32 bytes
                floats.append(value)
        elif number == 7:
            ints += [_signed(v) for v in _packed_varints(buf, wire, value)]
        elif number == 8 and wire == _BYTES:
            name = _text(buf, value)
        elif number == 9 and wire == _BYTES:
            raw = value
        elif number == 14 and wire == _VARINT and value == 1:
            raise _Error("an initializer is stored in an external file (refused)")
    if dtype not in _DTYPES:
        return name, None  # other types (strings, float16...) are not weights this reader converts
    if any(d < 0 for d in dims):
        raise _Error(f"tensor {name!r} has a negative dimension {dims}")
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    dt = _DTYPES[dtype]
    if raw is not None:
        data = bytes(buf[raw[0]:raw[1]])
    elif dtype == _FLOAT:
        data = b"".join(bytes(buf[a:b]) for a, b in floats)
    else:
        data = struct.pack(f"<{len(ints)}q", *ints)
    if len(data) != count * dt.itemsize:
        raise _Error(f"tensor {name!r} of shape {dims} needs {count * dt.itemsize} bytes, the file holds {len(data)}")
    return name, np.frombuffer(data, dt).reshape(dims).copy()


def _attribute(buf, start, end):
    name, scalar, listed = "", None, []
    for number, wire, value in _fields(buf, start, end):
        if number == 1 and wire == _BYTES:
            name = _text(buf, value)
        elif number == 2 and wire == _FIXED32:
            scalar = struct.unpack("<f", bytes(buf[value[0]:value[1]]))[0]
        elif number == 3 and wire == _VARINT:
            scalar = _signed(value)
        elif number == 7 and wire in (_BYTES, _FIXED32):  # packed or one by one: both are float32 bytes
            listed += [float(v) for v in np.frombuffer(bytes(buf[value[0]:value[1]]), "<f4")]
        elif number == 8:
            listed += [_signed(v) for v in _packed_varints(buf, wire, value)]
    return name, tuple(listed) if listed else scalar


def _node(buf, start, end):
    inputs, outputs, name, op_type, attributes = [], [], "", "", {}
    for number, wire, value in _fields(buf, start, end):
        if wire != _BYTES:
            continue
        if number == 1:
            inputs.append(_text(buf, value))
        elif number == 2:
            outputs.append(_text(buf, value))
        elif number == 3:
            name = _text(buf, value)
        elif number == 4:
            op_type = _text(buf, value)
        elif number == 5:
            key, attr = _attribute(buf, *value)
            attributes[key] = attr
    return OnnxNode(op_type, tuple(inputs), tuple(outputs), attributes, name)


def _graph(buf, start, end):
    initializers, nodes = {}, []
    for number, wire, value in _fields(buf, start, end):
        if wire != _BYTES:
            continue
        if number == 1:
            if len(nodes) >= MAX_NODES:
                raise _Error(f"more than {MAX_NODES} nodes")
            nodes.append(_node(buf, *value))
        elif number == 5:
            name, array = _tensor(buf, *value)
            if array is not None:
                initializers[name] = array
    return OnnxGraph(initializers, tuple(nodes))


def load_onnx_graph(path):
    """Reads an ONNX model's initializers and nodes, without ``onnx`` or a runtime.

    Args:
        path: str or path. The ``.onnx`` file.

    Returns:
        :class:`OnnxGraph`: ``initializers`` ``{name: ndarray}`` (float32 and int64
        tensors) and ``nodes`` (operator, inputs, outputs, attributes) in graph order.

    Raises:
        ValueError: the file is too large, is not an ONNX model, or a field is malformed
            (truncated, longer than its message, a tensor whose bytes do not match its shape,
            an initializer in an external file); the message names the file.

    Example:
    ```python
    graph = load_onnx_graph("embedding_model.onnx")
    [n.op_type for n in graph.nodes][:3]  # ['Pad', 'Reshape', 'Conv']
    ```
    """
    size = os.stat(path).st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path}: {size} bytes, more than the ONNX reader's limit of {MAX_BYTES}")
    with open(path, "rb") as f:
        buf = memoryview(f.read(MAX_BYTES + 1))
    try:
        graphs = [value for number, wire, value in _fields(buf, 0, len(buf)) if number == 7 and wire == _BYTES]
        if len(graphs) != 1:
            raise _Error(f"expected one graph (ModelProto field 7), found {len(graphs)}")
        graph = _graph(buf, *graphs[0])
    except _Error as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from None
    if not graph.nodes:
        raise ValueError(f"{path}: not a readable ONNX model (its graph has no nodes)")
    return graph
