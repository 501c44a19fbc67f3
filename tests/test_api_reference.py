"""The API reference (mkdocs.yml, built by run_tests.sh) is strict: a broken reference fails the build.

run_tests.sh builds the real pages; this checks that the configuration keeps failing
on what it must catch, e.g. if `strict` were dropped or `--quiet` (which hides the
warnings strict mode counts) were added. Each build reads the sources statically
(no TensorFlow import) and takes a few seconds.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def build(tmp_path, page):
    """Builds one page with the project's mkdocs.yml settings; returns the finished process."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(page, encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {REPO / 'mkdocs.yml'}\ndocs_dir: {docs}\nnav:\n  - index.md\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's mmkeras, not an installed one
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config), "--site-dir",
                           str(tmp_path / "site")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_resolving_reference_builds(tmp_path):
    proc = build(tmp_path, "# Version\n\n::: mmkeras.presets.build_model\n")
    assert proc.returncode == 0, proc.stderr
    assert "build_model" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("page, named", [
    ("::: mmkeras.presets.no_such_function\n", "mmkeras.presets.no_such_function"),  # an error anyway
    ("See [the builder][mmkeras.presets.no_such_builder].\n", "mmkeras.presets.no_such_builder"),  # strict only
], ids=["api block", "cross-reference"])
def test_a_broken_reference_fails_the_build(tmp_path, page, named):
    proc = build(tmp_path, "# Broken\n\n::: mmkeras.presets.build_model\n\n" + page)
    assert proc.returncode != 0, proc.stderr
    assert named in proc.stderr
