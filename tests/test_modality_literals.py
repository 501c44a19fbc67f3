"""Outside its own files, the library names no built-in modality: it asks the registry.

Counts string literals (``ast.Constant`` str, docstrings excluded; comments are not
literals) equal to a built-in modality name ("image", "audio", "text") in
``mmkeras/`` outside the places allowed to name them, and allows at most
``MAX_LITERALS``. The ones left, and why:

- ``preprocessing/image.py`` ``INPUT_NAME = "image"`` and ``preprocessing/audio.py``
  ``INPUT_NAME = "audio"``: these modules are the built-in modalities' own graph ops;
  a direct call (``decode_image(bytes)``) names its input in errors by this default.
- ``weights/registry.py`` ``modality="text"`` / ``modality="image"``: the pretrained
  weights catalogue says which modality each entry is for (data, like presets).

"""

import ast
from pathlib import Path

BUILT_IN = {"image", "audio", "text"}
ROOT = Path(__file__).resolve().parent.parent / "mmkeras"
# Where naming a built-in modality is the point: the modalities, presets and datasets.
ALLOWED = ("modalities/", "presets/", "datasets/")
MAX_LITERALS = 5


def _docstrings(tree):
    """The constant nodes that are docstrings (a module's, class's or function's first statement)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def modality_literals(root=ROOT, skip=ALLOWED):
    """``["path:line: name", ...]`` for every literal naming a built-in modality outside ``skip``."""
    hits = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(skip):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        hits += [f"{relative}:{node.lineno}: {node.value}" for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and node.value in BUILT_IN and id(node) not in docstrings]
    return sorted(hits)


def test_at_most_five_literals_name_a_built_in_modality_outside_its_files():
    hits = modality_literals()
    print("\n".join(hits))
    assert len(hits) <= MAX_LITERALS, (f"{len(hits)} literals name a built-in modality outside {ALLOWED}: ask the "
                                       "registry (mmkeras.modalities) instead:\n" + "\n".join(hits))


def test_the_count_sees_code_and_skips_docstrings(tmp_path):
    code = '"""Takes "image"."""\n\n\ndef f(x):\n    """text"""\n    return x["audio"]  # "text"\n'
    (tmp_path / "a.py").write_text(code)
    assert modality_literals(tmp_path, skip=()) == ["a.py:6: audio"]
