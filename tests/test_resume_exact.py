"""A run killed at any point and resumed from its backup ends with the same weights as an uninterrupted one.

Shuffle on, dropout on (fusion dropout and modality dropout), the best-checkpoint
tracker restored: the killed run is interrupted in the middle of an epoch (the
backup of the previous epoch is what it resumes from).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.distribute import BackupAndRestore
from mmkeras.training.shuffle import epoch_shuffle, set_epoch

EPOCHS = 3
SCORES = [0.5, 0.2, 0.4]  # scripted "score" (lower is better) per epoch: the best is epoch 1, epoch 2 is worse


class Killed(Exception):
    pass


class ScriptedScore(keras.callbacks.Callback):
    """Puts a scripted metric into the epoch logs (the logs dict is shared by the callbacks after it)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = SCORES[epoch]


class KillAt(keras.callbacks.Callback):
    """Raises in the middle of ``epoch`` (after ``batch`` training steps), as a crash would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise Killed(f"killed in epoch {self.epoch}, batch {self.batch}")


def _run(data, run_dir, kill=None, global_seed=0, features=False):
    (x, y) = data
    keras.utils.set_random_seed(global_seed)  # the towers' initial weights come from it
    model = mmkeras.build_model("image_audio_small", num_classes=4, seed=0, modality_dropout=0.3)
    if features:  # already preprocessed arrays: Keras would shuffle them itself
        x = model.preprocess(x)
    callbacks = [ScriptedScore(), *mmkeras.callbacks.default(str(run_dir), monitor="score",
                                                             backup_dir=str(run_dir / "backup"))]
    if kill is not None:
        callbacks.insert(0, KillAt(*kill))
    model.fit(x, y, validation_split=0.25, epochs=EPOCHS, batch_size=8, shuffle=True, verbose=0,
              callbacks=callbacks)
    return model, callbacks


@pytest.fixture(scope="module")
def data(tiny_synthetic):
    (x, y), _ = tiny_synthetic
    return {"image": x["image"][:48], "audio": x["audio"][:48]}, y[:48]


@pytest.fixture(scope="module", params=["raw", "features"])
def uninterrupted(request, data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    features = request.param == "features"
    model, callbacks = _run(data, run_dir, features=features)
    return model, callbacks, run_dir, features


def _checkpoint(callbacks):
    return next(c for c in callbacks if isinstance(c, mmkeras.callbacks.AtomicModelCheckpoint))


def test_killed_mid_epoch_and_resumed_matches_uninterrupted(data, uninterrupted, tmp_path):
    reference, reference_callbacks, reference_dir, features = uninterrupted
    with pytest.raises(Killed):
        _run(data, tmp_path, kill=(2, 2), features=features)
    state = json.loads((tmp_path / "backup" / "latest.json").read_text())
    assert state["epoch"] == 2 and state["callbacks"][0]["state"]["best_epoch"] == 1
    assert state["seeds"], "the dropout layers' random states are part of the backup"

    # another process: its own initial weights and random states, all replaced by the backup's
    resumed, callbacks = _run(data, tmp_path, global_seed=7, features=features)
    backup = next(c for c in callbacks if isinstance(c, BackupAndRestore))
    assert backup.restored_epoch == 2
    for got, want in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # the best checkpoint stays epoch 1's model: the resumed tracker did not restart at -inf
    checkpoint = _checkpoint(callbacks)
    assert (checkpoint.best, checkpoint.best_epoch) == (0.2, 1)
    best = keras.saving.load_model(tmp_path / "best.keras")
    reference_best = keras.saving.load_model(reference_dir / "best.keras")
    for got, want in zip(best.get_weights(), reference_best.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not all(np.allclose(a, b) for a, b in zip(best.get_weights(), resumed.get_weights()))


def test_the_backup_runs_after_the_checkpoint_and_tracks_it(tmp_path):
    callbacks = mmkeras.callbacks.default(str(tmp_path), backup_dir=str(tmp_path / "backup"))
    backup = callbacks[-1]
    assert isinstance(backup, BackupAndRestore)
    assert backup.stateful == [_checkpoint(callbacks)]


def test_a_backup_from_other_callbacks_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    first = BackupAndRestore(tmp_path, stateful=[mmkeras.callbacks.AtomicModelCheckpoint(str(tmp_path / "a.keras"))])
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[first])  # deleted at the end
    first.delete_checkpoint = False
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[first])
    with pytest.raises(ValueError, match="state of 1 callbacks but 0 are tracked"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0, callbacks=[BackupAndRestore(tmp_path)])


def test_epoch_shuffle_order_depends_only_on_seed_and_epoch():
    ds = epoch_shuffle(tf.data.Dataset.range(20), 20, seed=3)
    assert ds.cardinality() == 20
    orders = [list(ds.as_numpy_iterator()) for _ in range(3)]
    assert sorted(orders[0]) == list(range(20)) and orders[0] != orders[1] != orders[2]
    other = epoch_shuffle(tf.data.Dataset.range(20), 20, seed=3)
    set_epoch(2)  # a resumed run at epoch 2: its first pass is epoch 2's order
    assert list(other.as_numpy_iterator()) == orders[2]
    pairs = epoch_shuffle(tf.data.Dataset.from_tensor_slices((tf.range(5), tf.range(5) * 10)), 5, seed=0)
    assert all(b == 10 * a for a, b in pairs.as_numpy_iterator())  # tuple elements stay together
