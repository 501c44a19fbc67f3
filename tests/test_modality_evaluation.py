"""A modality declares its own robustness corruption and explanation panels; evaluation asks the registry.

Two toy numeric modalities are registered from this file alone (no mmkeras file
knows them): ``meter`` declares a corruption (an offset added to every reading)
and a custom explanation panel; ``gauge`` declares neither, so the robustness
table only removes it and the figure draws the default bars of attribution.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.evaluation.explain_figure import explanation_figure
from mmkeras.modalities import MODALITIES, Modality
from mmkeras.towers import TOWERS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_modality import MLPTower  # noqa: E402

SIZE = 4


@MODALITIES.register("meter")
class MeterModality(Modality):
    description = "comma-separated readings as UTF-8 text, '' when absent"
    defaults = {"size": SIZE}
    corruption = "offset"
    corruption_severities = (0.5, 2.0)

    def feature_specs(self, config):
        return {self.name: ((config["size"],), "float32")}

    def preprocess_batch(self, values, config, state):
        present = tf.strings.length(values) > 0
        text = tf.where(present, values, ",".join(["0"] * config["size"]))
        numbers = tf.strings.to_number(tf.strings.split(text, ","), tf.float32).to_tensor(0.0)
        return {self.name: tf.where(present[:, None], numbers, 0.0)}, tf.cast(present, tf.float32)

    def example(self, config):
        return ",".join(["0.5"] * config["size"]).encode()

    def corrupt_value(self, value, severity, rng):
        return ",".join(f"{float(v) + severity:g}" for v in value.split(","))

    def explanation_panels(self, feature, attribution, names=None):
        def draw(ax, fig, plt):
            ax.plot(feature, label="reading")
            ax.bar(range(len(attribution)), attribution, alpha=0.5, label="attribution")

        return [{"kind": "custom", "name": self.name, "title": f"{self.name}: readings and attribution",
                 "draw": draw, "width": 1.5}]


@MODALITIES.register("gauge")
class GaugeModality(MeterModality):  # the base class's corruption and panels: none, default bars
    corruption = None
    corrupt_value = Modality.corrupt_value
    explanation_panels = Modality.explanation_panels


@TOWERS.register("meter/mlp")
class MeterMLP(MLPTower):
    def __init__(self, dim=8, activation="tanh", **kwargs):
        super().__init__(dim=dim, activation=activation, **kwargs)


def _model():
    tower = {"tower": {"type": "meter/mlp", "dim": 8}}
    return mmkeras.build_model({"modalities": {"meter": tower, "gauge": tower},
                                "fusion": {"type": "fusion/concat", "dim": 8}}, num_classes=2, seed=0)


def _raw(n=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = lambda: [",".join(f"{v:.3f}" for v in r) for r in rng.normal(size=(n, SIZE))]  # noqa: E731
    return {"meter": rows(), "gauge": rows()}, np.arange(n) % 2


def test_robustness_uses_the_modalitys_own_corruption_and_skips_one_that_declares_none():
    model = _model()
    x, y = _raw()
    cache = {}
    report = mmkeras.evaluate_robustness(model, x, y, cache=cache)
    assert [r["condition"] for r in report.rows] == ["all present", "meter removed", "gauge removed",
                                                     "meter offset=0.5", "meter offset=2"]
    clean = model.preprocess(x)["meter"]
    shifted = [features["meter"] for features in cache.values()]
    np.testing.assert_allclose(shifted[0], clean + 0.5, atol=1e-5)  # the toy's corruption ran, at each level
    np.testing.assert_allclose(shifted[1], clean + 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="severities for 'gauge', but the gauge modality declares no corruption"):
        mmkeras.evaluate_robustness(model, x, y, severities={"gauge": (1.0,)})
    with pytest.raises(ValueError, match=r"severities for \['image'\], which the model does not take"):
        mmkeras.evaluate_robustness(model, x, y, severities={"image": (0.1,)})


def test_the_explain_figure_draws_each_modalitys_own_panels(tmp_path, monkeypatch):
    model = _model()
    x, _ = _raw(2)
    x["gauge"][1] = ""  # absent in the second example
    explanations = mmkeras.explain(model, x, steps=4, plot_dir=tmp_path)
    assert (tmp_path / "explanation_1.png").read_bytes()[:4] == b"\x89PNG"
    first, second = ([ax.get_title() for ax in explanation_figure(e).axes] for e in explanations)
    assert first[:2] == ["meter: readings and attribution", "gauge: integrated gradients per element"]
    assert first[2].startswith("Shapley: sum")
    assert second[:2] == ["meter: readings and attribution", "gauge: integrated gradients: absent"]
    custom = explanation_figure(explanations[0]).axes[0]
    assert len(custom.lines) == 1 and len(custom.patches) == SIZE  # the toy's own drawing: a line and bars

    monkeypatch.setattr(MeterModality, "explanation_panels",
                        lambda self, *a: [{"kind": "hologram", "name": "meter", "title": "3-D"}])
    with pytest.raises(ValueError, match="the meter modality's explanation panel '3-D' has kind 'hologram'"):
        explanation_figure(explanations[0])


def test_the_default_panel_shows_the_largest_attributions_or_a_map():
    gauge = GaugeModality()
    scores = np.linspace(-1.0, 0.96, 50)  # |score| largest at the ends
    (panel,) = gauge.explanation_panels(np.zeros(50), scores)
    assert panel["kind"] == "bars" and panel["title"] == "gauge: integrated gradients per element (largest 40 of 50)"
    labels = [label for label, _ in panel["values"]]
    assert len(labels) == 40 and labels[:2] == ["0", "1"] and "24" not in labels  # in element order, small ones out
    (panel,) = gauge.explanation_panels(np.zeros((3, 2, 2)), np.ones((3, 2, 2)))
    assert panel["kind"] == "signed_map" and panel["values"].shape == (3, 4)
