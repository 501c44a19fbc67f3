"""Worker function for the multi-worker tests (run by mmkeras.distribute.launch_local)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _stall_at(stall_epoch, stall_batch, marker):
    """A callback that stops this worker mid-epoch: writes ``marker``, then waits to be SIGKILLed."""
    import keras

    class StallAt(keras.callbacks.Callback):
        _epoch = -1

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_begin(self, step, logs=None):
            if (self._epoch, step) == (stall_epoch, stall_batch):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(600)

    return StallAt()


def train(out_dir, init_path, epochs=3, kill_at=None, export=False, mixed_precision=False, logs=False,
          batchnorm=False):
    import common
    import numpy as np

    import mmkeras
    import mmkeras.callbacks
    import mmkeras.distribute
    from mmkeras.distribute import outputs

    strategy = mmkeras.distribute.strategy("auto")
    assert isinstance(strategy, __import__("tensorflow").distribute.MultiWorkerMirroredStrategy), strategy
    model = common.build(strategy, mixed_precision="float32")
    with strategy.scope():
        model.load_weights(init_path)
    (x, y), (xt, yt) = common.data()
    backup = mmkeras.distribute.BackupAndRestore(os.path.join(out_dir, "backup"))
    extra = mmkeras.callbacks.default(os.path.join(out_dir, "logs"), monitor="loss") if logs else []
    callbacks = mmkeras.distribute.prepare_callbacks(extra + [backup], strategy=strategy)
    if kill_at is not None and kill_at["worker"] == mmkeras.distribute.task()[1]:
        callbacks.append(_stall_at(kill_at["epoch"], kill_at["batch"], kill_at["marker"]))
    history = model.fit(x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=2, callbacks=callbacks)
    result = {
        "chief": mmkeras.distribute.is_chief(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "restored_epoch": backup.restored_epoch,
        "epochs_run": history.epoch,
        "weights": [np.asarray(w) for w in model.get_weights()],
        "mirrored": type(model.trainable_variables[0].value).__name__,
        "evaluate": model.evaluate(xt, yt, batch_size=8, verbose=0, return_dict=True),
        "predict": model.predict(xt, batch_size=8, verbose=0),
        "temp_dirs": list(outputs._TEMP_DIRS),
    }
    if export:
        result["export"] = mmkeras.export_saved_model(model, os.path.join(out_dir, "export"))
    if mixed_precision:
        # Mixed precision under MWMS: float16 compute with loss scaling, float32 variables and outputs.
        mp = common.build(strategy, mixed_precision="mixed_float16")
        h = mp.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        result["mixed_float16"] = {"loss": h.history["loss"][-1], "optimizer": type(mp.optimizer).__name__,
                                   "variable_dtype": mp.trainable_variables[0].dtype,
                                   "output_dtype": str(mp.predict(xt, verbose=0).dtype)}
    if batchnorm:
        # Conv towers with BatchNorm, synchronised (the default under TF) and not: moving statistics per worker.
        for key, synchronized in (("batchnorm", "auto"), ("batchnorm_unsynchronized", False)):
            bn = common.build(strategy, mixed_precision="float32", preset=common.bn_preset(synchronized))
            bn.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
            result[key] = {"moving_statistics": common.moving_statistics(bn),
                           "weights": [np.asarray(w) for w in bn.get_weights()]}
    print(json.dumps({k: v for k, v in result.items() if k not in ("weights", "predict", "batchnorm",
                                                                    "batchnorm_unsynchronized")}, default=str),
          flush=True)
    return result
