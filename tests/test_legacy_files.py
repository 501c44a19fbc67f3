"""``.keras`` files written by an earlier mmkeras still load and predict the same.

tests/fixtures/legacy/ holds files saved at commit 3b156a1 (before the model-core
redesign) by make_legacy_fixtures.py there, with the predictions that version gave
for a few raw requests (one without audio, one without text).
"""

import base64
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import mmkeras  # noqa: F401  (registers the classes the files name)

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


def _requests(modalities):
    raw = EXPECTED["requests_b64"]
    return {m: [base64.b64decode(v) if m != "text" else base64.b64decode(v).decode() for v in raw[m]]
            for m in modalities}


@pytest.mark.parametrize("name", sorted(EXPECTED["outputs"]))
def test_legacy_file_loads_and_predicts_the_same(name):
    model = keras.saving.load_model(LEGACY / f"{name}.keras")
    expected = EXPECTED["outputs"][name]
    out = model.predict(_requests(model.modalities), verbose=0)
    out = out if isinstance(out, dict) else {"scores": out}
    assert set(out) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(out[key]), np.asarray(value), atol=1e-5, err_msg=f"{name}:{key}")
