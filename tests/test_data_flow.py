"""Data flows one way: raw inputs -> mmkeras.data -> preprocessor -> model (issue 23, item 1).

The pipeline reads a task's public description and returns values; it never
reads or writes a task's (or model's, or anyone's) private attributes. An AST
scan of mmkeras/data/ enforces it: ``obj._name`` is allowed only on ``self`` /
``cls`` and on imported modules, and ``getattr``/``setattr``/``hasattr`` never
name a private attribute.
"""

import ast
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "mmkeras" / "data"
ACCESSORS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_accesses(source, filename="<source>"):
    """``["file:line: text"]`` for each private attribute access on something not self/cls/a module."""
    tree = ast.parse(source, filename)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            base = node.value
            while isinstance(base, ast.Attribute):  # tf.data.experimental._x: a module chain is fine
                base = base.value
            if not own and not (isinstance(base, ast.Name) and base.id in modules):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ACCESSORS
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_catches_what_the_pipeline_used_to_do():
    before = ("import tensorflow as tf\n"
              "def fit(self, task):\n"
              "    self.task._remember_validation_data(1)\n"
              "    if getattr(task, '_direct_predict', None) is None:\n"
              "        task._direct_predict = tf.function(len)\n"
              "    self._cache = tf._private_but_a_module\n")
    assert [line.split(": ", 1)[1] for line in private_accesses(before)] == [
        "self.task._remember_validation_data", "getattr(task, '_direct_predict', None)", "task._direct_predict"]


def test_data_package_touches_no_private_attribute_of_a_task_or_model():
    found = [hit for path in sorted(DATA.glob("*.py"))
             for hit in private_accesses(path.read_text(), str(path.relative_to(DATA.parents[1])))]
    assert not found, "mmkeras/data reads or writes private attributes of other objects:\n" + "\n".join(found)
