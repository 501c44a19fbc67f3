"""The benchmarks' presets (benchmarks/presets.py): outside the library, registered on request, and each
classifier among them trains a step and round-trips through .keras like a library preset.

Split from tests/test_presets.py: with ``--dist loadfile`` a file runs on one worker, and the
two halves of the per-preset round trips balance the two CI workers.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mmkeras
from benchmarks.presets import BENCHMARK_PRESETS, register_benchmark_presets
from tests.helpers import classifier_presets, trains_one_step_and_round_trips

REPO = Path(__file__).resolve().parents[1]


def test_the_library_lists_only_its_own_presets_and_benchmarks_add_theirs():
    """Benchmark presets live in benchmarks/presets.py, outside the package; importing mmkeras lists none."""
    code = ("import json, mmkeras; before = set(mmkeras.list_presets()); "
            "from benchmarks.presets import BENCHMARK_PRESETS, register_benchmark_presets; "
            "register_benchmark_presets(); register_benchmark_presets(); after = set(mmkeras.list_presets()); "
            "print(json.dumps([sorted(before), sorted(after - before), sorted(BENCHMARK_PRESETS)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    library, added, benchmark = json.loads(out.strip().splitlines()[-1])
    assert {"image_audio_text_small", "image_small"} <= set(library)
    assert not set(library) & set(benchmark)  # no av_*, reference_*, text_sst2_*
    assert not any(name.startswith(("av_", "reference_")) for name in library)
    assert added == benchmark
    assert set(added) >= {"reference_small", "reference_base", "av_gated_small", "text_sst2_small"}


def test_a_benchmark_preset_name_taken_by_another_config_is_refused(monkeypatch):
    from mmkeras.presets.registry import PRESETS

    monkeypatch.setitem(PRESETS, "av_gated_small", {**mmkeras.get_preset("image_small"), "name": "av_gated_small"})
    with pytest.raises(ValueError, match="a preset named 'av_gated_small' is already registered with another config"):
        register_benchmark_presets()


def _reference_params(small):
    src = open(mmkeras_reference_path()).read().split("results = {")[0]
    src = src.replace("A = P.parse_args()", f"A = P.parse_args({['--small'] if small else []})")
    namespace = {}
    exec(compile(src, "reference_keras.py", "exec"), namespace)
    return namespace["build"]().count_params()


def mmkeras_reference_path():
    from tests.conftest import DATA_DIR

    path = DATA_DIR.parent / "bench" / "reference_keras.py"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.parametrize("name,small", [("reference_small", True), ("reference_base", False)])
def test_reference_presets_match_hand_written_model(name, small):
    model = mmkeras.build_model(name, num_classes=10, compile=False)
    assert model.count_params() == _reference_params(small)


@pytest.mark.parametrize("name", classifier_presets(BENCHMARK_PRESETS))
def test_benchmark_preset_trains_one_step_and_round_trips(name, tmp_path):
    trains_one_step_and_round_trips(name, tmp_path)
