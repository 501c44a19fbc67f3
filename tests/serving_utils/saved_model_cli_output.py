"""Parses the text that ``saved_model_cli show --all`` prints into signatures.

Returns ``{signature: {"inputs": {key: {"dtype", "shape", "name"}}, "outputs": {...},
"method": str}}``; shapes as tuples of ints (``-1`` unknown), ``None`` for unknown rank.
"""

import re

_SIG = re.compile(r"^signature_def\['(?P<name>[^']+)'\]:")
_TENSOR = re.compile(r"^\s+(?P<side>inputs|outputs)\['(?P<key>[^']+)'\] tensor_info:")
_FIELD = re.compile(r"^\s+(?P<field>dtype|shape|name): (?P<value>.*)$")
_METHOD = re.compile(r"^\s+Method name is: ?(?P<method>.*)$")


def _shape(text):
    if text == "unknown_rank":
        return None
    inner = text.strip("()").strip()
    return tuple(int(d) for d in inner.split(",") if d.strip())


def parse_show_all(text):
    """``saved_model_cli show --all`` stdout -> signature dict (see module doc)."""
    signatures, sig, tensor = {}, None, None
    for line in text.splitlines():
        if m := _SIG.match(line):
            sig = signatures.setdefault(m["name"], {"inputs": {}, "outputs": {}, "method": None})
            tensor = None
        elif sig is None:
            continue
        elif m := _TENSOR.match(line):
            tensor = sig[m["side"]].setdefault(m["key"], {})
        elif m := _METHOD.match(line):
            sig["method"] = m["method"].strip()
            tensor = None
        elif (m := _FIELD.match(line)) and tensor is not None:
            value = m["value"].strip()
            tensor[m["field"]] = _shape(value) if m["field"] == "shape" else value
        elif line.startswith("Concrete Functions") or line.startswith("The MetaGraph with tag set"):
            sig, tensor = None, None
    return signatures
