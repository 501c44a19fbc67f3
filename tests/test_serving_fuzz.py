"""Fuzz test: hostile requests against the exported model, answered the way TF Serving answers them.

A few hundred seeded cases (tests/serving_utils/fuzz_cases.py: mutated and
truncated real MNIST/FSDD files, headers declaring huge sizes, a 2,000-frame GIF,
WAV chunk floods and out-of-range header fields, hostile text, batch-shape abuse,
out-of-range ``features`` tensors) go one at a time to a TF-only worker process
that feeds the signature tensors through the session C API (no shape check, as
the C++ server). The parent watches the worker's memory and time.

Contract: no crash, no hang (a case over 60 s), peak worker RSS under 2 GiB (the
loaded model alone peaks near 1.1 GiB), no case over 10 s, no NaN/Inf in any
output, every error INVALID_ARGUMENT starting with ``mmkeras: input '``, valid
requests answered and hostile ones refused. ``benchmarks/fuzz_campaign.py`` runs
the same machinery on 1,000+ cases.
"""

import re
import sys
from pathlib import Path

import pytest

import mmkeras

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import fuzz_cases, fuzz_runner  # noqa: E402

RSS_LIMIT_KB = 2048 * 1024
TIME_LIMIT_S = 10.0
HANG_S = 60.0


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    model = fuzz_cases.fuzz_model()
    export_dir = mmkeras.export_saved_model(model, tmp_path_factory.mktemp("fuzz") / "m")
    cases = fuzz_cases.make_cases(model, seed=12, mutations=140, valid=15)
    results, info = fuzz_runner.run_cases(export_dir, cases, timeout=HANG_S, kill_kb=6 * 1024 * 1024)
    return {"results": {r["id"]: r for r in results}, "info": info}


def _family(fuzzed, family):
    found = [r for r in fuzzed["results"].values() if r["family"] == family]
    assert found, family
    return found


def test_no_crash_hang_blowup_nan_or_unnamed_error(fuzzed):
    results = list(fuzzed["results"].values())
    assert len(results) >= 250
    assert fuzz_runner.problems(results, RSS_LIMIT_KB, TIME_LIMIT_S) == []
    assert fuzzed["info"]["restarts"] == 0
    assert sum(r["ok"] for r in results) >= 40 and sum(not r["ok"] for r in results) >= 100


def test_the_worker_is_tensorflow_only(fuzzed):
    ready = fuzzed["info"]["ready"]
    assert ready["mmkeras_imported"] is False
    assert ready["signatures"] == ["__saved_model_init_op", "features", "serving_default"]


@pytest.mark.parametrize("family,message", [
    ("png_huge_declared", r"example 0: declares \d+ x \d+ pixels, more than the limit max_pixels=16777216"),
    # libjpeg itself refuses sides over 65500 before mmkeras can compare the size with the limit
    ("jpeg_huge_declared", r"example 0: (declares \d+ x \d+ pixels, more than the limit max_pixels=|could not be "
                           r"decoded as JPEG)"),
    ("gif_huge_frame", r"example 0: declares 65000 x 65000 pixels"),
    ("bmp_bad_header", r"input 'image', example 0: "),
    ("wav_rate_out_of_range", r"input 'audio', example 0: (WAV sample rate \d+ Hz is above the limit "
                              r"max_sample_rate=1000000|malformed WAV header)"),
    ("wav_chunk_flood", r"input 'audio', example 0: no 'fmt ' and 'data' chunks within the limit max_wav_chunks=256"),
    ("batch_too_many", r"input 'image': \d+ examples, more than the limit max_examples=1024"),
    ("batch_rank0", r"input 'image': expected a 1-D batch of strings .*got shape \[\]"),
    ("batch_zero", r"input 'image': the batch is empty"),
    ("batch_one_all_empty", r"input 'image/audio/text', example 1: every input is empty"),
    ("batch_nothing_usable", r"input 'image/audio/text', example 0: no input could be used"),
    ("batch_one_bad_image", r"input 'image', example 5: "),
    ("features_bad_present", r"input 'present', example 1: values must be 0 or 1"),
    ("features_text_out_of_vocabulary", r"input 'text', example 0: token ids must be in \[0, 5000\)"),
    ("features_audio_not_finite", r"input 'audio', example 1: holds NaN or Inf"),
    ("features_image_overflows", r"input 'image', example 1: the model's output is not finite .*3.000e\+38"),
])
def test_hostile_requests_fail_naming_input_example_and_limit(fuzzed, family, message):
    for r in _family(fuzzed, family):
        assert not r["ok"], family
        assert fuzz_runner.names_the_input(r)
        assert re.search(message, fuzz_runner.mmkeras_message(r["message"])), r["message"]


def test_only_the_first_gif_frame_is_decoded(fuzzed):
    # 2,000 frames of 200 x 200 would decode to 240 MB; the first frame alone is 120 KB.
    gifs = _family(fuzzed, "gif_many_frames")
    assert all(r["ok"] for r in gifs)
    biggest = max(gifs, key=lambda r: r["request_bytes"])
    assert biggest["seconds"] < 1.0


def test_hostile_but_valid_inputs_are_answered_in_bounded_time(fuzzed):
    for family in ("png_1x100000", "png_100000x1", "wav_ten_minutes", "wav_data_size_lies", "text_hostile",
                   "batch_64_valid", "features_valid", "wav_float_nan", "absent_image", "only_text"):
        for r in _family(fuzzed, family):
            assert r["ok"] and r["finite"], (family, r.get("message"))
            assert r["seconds"] < 5.0, (family, r["seconds"])
