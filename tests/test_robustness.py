"""evaluate_robustness: table shape, plot, TensorBoard log; the corruptions themselves."""

import numpy as np

import mmkeras
from mmkeras.evaluation.corruptions import gaussian_pixel_noise, read_wav, white_noise_snr, word_dropout
from tests._av_helpers import av_subset, tiny_av_preset


def test_evaluate_robustness_table_plot_and_tensorboard(tmp_path):
    x, y = av_subset(16, split="test")
    model = mmkeras.build_model(tiny_av_preset(), num_classes=10)
    report = mmkeras.evaluate_robustness(model, x, y, severities={"image": (0.3,), "audio": (10, 0)},
                                         plot_path=str(tmp_path / "r.png"), log_dir=str(tmp_path / "tb"))
    conditions = [r["condition"] for r in report.rows]
    assert conditions == ["all present", "image removed", "audio removed", "image gaussian_noise_std=0.3",
                          "audio white_noise_snr_db=10", "audio white_noise_snr_db=0"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in report.rows)
    assert report.to_markdown().count("\n") == len(report) + 1
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_default_table_has_three_levels_per_modality():
    x, y = av_subset(8, split="test")
    model = mmkeras.build_model(tiny_av_preset(), num_classes=10)
    cache = {}
    report = mmkeras.evaluate_robustness(model, x, y, cache=cache)
    assert len(report) == 1 + 2 + 3 + 3 and len(cache) == 6


def test_corruptions():
    x, _ = av_subset(4)
    clean, _ = read_wav(x["audio"][0])
    noisy, rate = read_wav(white_noise_snr(x["audio"][:1], snr_db=0.0, seed=0)[0])
    assert rate == 8000 and noisy.shape == clean.shape
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr) < 1.0
    images = np.array([x["image"][0], b""], dtype=object)
    out = gaussian_pixel_noise(images, 0.5)
    assert out[0][:4] == b"\x89PNG" and out[0] != images[0] and out[1] == b""
    texts = np.array(["a truly great film", "ok", ""], dtype=object)
    dropped = word_dropout(texts, rate=0.99, seed=0)
    assert all(len(t.split()) == 1 for t in dropped[:2]) and dropped[2] == ""
