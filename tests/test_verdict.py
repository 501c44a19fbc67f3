"""The paired comparison behind `mmkeras tune`'s verdict: exact McNemar, the paired bootstrap, the verdict."""

import json
import math

import numpy as np
import pytest

from mmkeras.evaluation.verdict import Verdict, compare_fusion, mcnemar_exact, paired_bootstrap_interval


def test_mcnemar_exact_on_known_counts():
    # b = 10, c = 2: P[X <= 2] for X ~ Bin(12, 1/2) = (1 + 12 + 66) / 4096; two-sided doubles it.
    assert mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in ((3, 17), (40, 25), (400, 330)):  # large counts: exact integers, no underflow
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    with pytest.raises(ValueError, match="discordant counts must be >= 0"):
        mcnemar_exact(-1, 3)


def test_paired_bootstrap_interval_matches_resampling_examples():
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.8
    b = rng.random(300) < 0.7
    low, high = paired_bootstrap_interval(a, b, samples=4000, seed=1)
    # The same statistic by resampling example indices (the slow, obvious way).
    draws = rng.integers(0, 300, (4000, 300))
    brute = 100.0 * (a[draws].mean(axis=1) - b[draws].mean(axis=1))
    assert low == pytest.approx(np.percentile(brute, 2.5), abs=1.0)
    assert high == pytest.approx(np.percentile(brute, 97.5), abs=1.0)
    assert low < 100.0 * (a.mean() - b.mean()) < high
    assert paired_bootstrap_interval(a, a) == (0.0, 0.0)  # identical models: no difference in any resample
    with pytest.raises(ValueError, match="different examples: 300 fused vs 299 single"):
        paired_bootstrap_interval(a, b[:-1])


def test_noise_modality_fusion_is_not_recommended():
    """Audio is pure noise: the fused model equals the image-only one up to a few flips; no fusion."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    image = np.where(rng.random(500) < 0.95, y, (y + 1) % 10)
    fused = image.copy()
    right, wrong = np.flatnonzero(image == y)[:3], np.flatnonzero(image != y)[:4]
    fused[right], fused[wrong] = (y[right] + 3) % 10, y[wrong]  # 3 new errors, 4 fixed: +0.2 points
    audio = rng.integers(0, 10, 500)
    verdict = compare_fusion(y, fused, {"image": image, "audio": audio})
    assert verdict.best_single_modality == "image"
    assert not verdict.fusion_beats_best_single and not verdict.significant
    assert verdict.interval[0] < 0 < verdict.interval[1]
    line = verdict.line()
    assert line.startswith("fusion does not beat the best single modality (image, ")
    assert "within noise" in line and line.endswith("consider the image-only model")


def test_clean_case_fusion_wins_and_says_by_how_much(tmp_path):
    y = np.arange(400) % 4
    fused = y.copy()
    fused[:8] = (y[:8] + 1) % 4                      # 98% right
    image = np.where(np.arange(400) % 5 == 0, (y + 1) % 4, y)  # 80% right
    audio = np.where(np.arange(400) % 3 == 0, (y + 2) % 4, y)  # 66.75% right
    verdict = compare_fusion(y, fused, {"image": image, "audio": audio})
    assert verdict.fusion_beats_best_single and verdict.significant and verdict.p_value < 1e-10
    assert verdict.best_single_modality == "image" and verdict.difference == pytest.approx(18.0)
    assert verdict.line().startswith("fusion beats the best single modality (image, 80.0%) by +18.0 points on "
                                     "validation (95% paired bootstrap interval [")
    path = verdict.save(str(tmp_path / "verdict.json"))
    saved = json.loads(open(path).read())
    assert {"fusion_beats_best_single", "best_single_modality", "fused", "best_single", "difference", "interval",
            "significant"} <= set(saved)
    assert saved["fusion_beats_best_single"] is True and saved["best_single_modality"] == "image"
    assert saved["fused"] == pytest.approx(0.98) and saved["best_single"] == pytest.approx(0.8)
    assert saved["interval"][0] > 0 and math.isclose(saved["difference"], 18.0)
    table = verdict.table().splitlines()
    assert table[1].startswith("fused") and table[2].startswith("image only") and table[3].startswith("audio only")


def test_single_modality_significantly_better_says_so():
    verdict = Verdict({"fused": 0.6, "image": 0.9}, "image", (-35.0, -25.0), 1e-12)
    assert not verdict.fusion_beats_best_single and verdict.significant
    assert "the single modality is significantly better" in verdict.line()
