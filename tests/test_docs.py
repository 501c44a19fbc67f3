"""Every ```python block of README.md and docs/*.md runs, so a snippet that no longer works fails CI.

The blocks of one file run in order in one namespace (like a notebook) and an empty
directory; all files share one fresh process, so TensorFlow starts once. A block that
cannot run here (it needs a TF Serving server, several workers, a TPU) is fenced
```python no-run; their number is capped. To keep CI fast, a few literal substitutions
shrink data and epochs; each must still match its file, so the documentation and this
test cannot drift apart silently.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```python([^\n]*)\n(.*?)^\1```", re.S | re.M)
MAX_NO_RUN = 5
# file name -> [(text in the file, what the test runs instead)]
SMALLER = {
    "README.md": [("synthetic(num_classes=10)", "synthetic(num_classes=10, num_train=48, num_test=16)"),
                  ("epochs=5", "epochs=1"), ("num_train=300", "num_train=40"), ("epochs=3,", "epochs=1,"),
                  ("epochs=20)", "epochs=1)")],
    "serving.md": [("epochs=3", "epochs=1"), ("num_train=200", "num_train=32")],
    "distributed.md": [("epochs=10", "epochs=1"), ("num_train=256", "num_train=32"),
                       ("num_train=512", "num_train=32")],
    "data.md": [("epochs=3", "epochs=1"), ("num_train=90", "num_train=30")],
    "MultimodalVAE": [("num_train=512", "num_train=48"), ("epochs=10)", "epochs=1)"),
                      ("epochs=10, batch_size=128", "epochs=1, batch_size=16")],
}
# Classes whose docstring examples run too, after the guides: the class's example, then its own and its
# mixins' methods' (not Task's) in source order, in one namespace, so the method examples continue the
# class's.
DOCSTRING_CLASSES = ["MultimodalVAE"]


def blocks(path):
    """``[(info string, code)]`` of the file's python blocks (indented ones dedented)."""
    out = []
    for indent, info, code in FENCE.findall(path.read_text()):
        lines = [line[len(indent):] if line.startswith(indent) else line for line in code.splitlines()]
        out.append((info.strip(), "\n".join(lines)))
    return out


def test_no_run_blocks_are_few_and_marked():
    no_run = [(p.name, code.splitlines()[0]) for p in DOCS for info, code in blocks(p) if info == "no-run"]
    assert len(no_run) <= MAX_NO_RUN, no_run
    unknown = {info for p in DOCS for info, _ in blocks(p)} - {"", "no-run"}
    assert not unknown, f"unknown python block markers {unknown}"


def docstring_blocks(class_name):
    """The python blocks of ``mmkeras.models.<class_name>``'s docstring, then of its methods' docstrings."""
    import inspect

    import mmkeras.models

    cls = getattr(mmkeras.models, class_name)
    own = cls.__mro__[:cls.__mro__.index(mmkeras.models.Task)]  # the class and its mixins
    docs = [inspect.getdoc(cls)] + [inspect.getdoc(member) for klass in reversed(own)
                                    for name, member in vars(klass).items()
                                    if not name.startswith("_") and callable(member) and member.__doc__]
    return [code for doc in docs for _, info, code in FENCE.findall(doc + "\n") if info.strip() != "no-run"]


def test_docstring_examples_are_found():
    blocks = docstring_blocks("MultimodalVAE")
    assert len(blocks) >= 7 and "build_model(\"image_audio_vae_small\")" in blocks[0]
    assert any("model.generate(" in b for b in blocks[1:]) and any("model.decode(" in b for b in blocks[1:])


RUNNER = """
import os, sys, time, traceback
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    start = time.perf_counter()
    os.makedirs(name, exist_ok=True)
    os.chdir(name)
    try:
        exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        sys.exit(f"the python blocks of {name} failed")
    os.chdir("..")
    print(f"ran the python blocks of {name} in {time.perf_counter() - start:.0f} s", flush=True)
"""


def test_python_blocks_run(tmp_path):
    """One process for all files (TensorFlow starts once); each file in its own namespace and directory."""
    scripts = {doc.name: "\n\n".join(code for info, code in blocks(doc) if info != "no-run") for doc in DOCS}
    scripts.update({name: "import mmkeras\n\n" + "\n\n".join(docstring_blocks(name)) for name in DOCSTRING_CLASSES})
    args = []
    for name, script in scripts.items():
        if not script:
            continue
        for text, smaller in SMALLER.get(name, []):
            assert text in script, f"{name} no longer contains {text!r}: update SMALLER in {__file__}"
            script = script.replace(text, smaller)
        (tmp_path / f"{name}.py").write_text(script)
        args += [name, str(tmp_path / f"{name}.py")]
    assert len(args) >= 8  # README.md and docs/{data,distributed,serving}.md have runnable blocks
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if DATA_DIR.exists():
        env.setdefault("MMKERAS_DATA_DIR", str(DATA_DIR))
    # A bound, not a target: the blocks take ~15 min alone on the idle 2-core machine (879 s measured,
    # MiniLM / EfficientNet fine-tuning and the VAE included) and hit 1,200 s beside a busy xdist worker.
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=2400, env=env)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith("ran the python blocks")))
