"""MirroredStrategy over 2 logical CPU devices vs the default strategy (run as its own process).

Logical devices can only be configured before TensorFlow initialises its
devices, so this cannot run inside a pytest process that already used TF.
Prints one JSON line (prefixed ``RESULT``) for tests/test_distribute_mirrored.py.
"""

import json
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import numpy as np  # noqa: E402

import mmkeras.distribute  # noqa: E402


def fit(strategy, init_path, mixed_precision="float32"):
    model = common.build(strategy, mixed_precision=mixed_precision)
    if init_path:
        with (strategy or tf.distribute.get_strategy()).scope():
            model.load_weights(init_path)
    (x, y), (xt, yt) = common.data()
    history = model.fit(x, y, epochs=2 if mixed_precision == "float32" else 1, batch_size=8, shuffle=False, verbose=0)
    return model, history, model.evaluate(xt, yt, batch_size=8, verbose=0, return_dict=True), \
        model.predict(xt, batch_size=8, verbose=0)


def main(init_path):
    out = {}
    reference = common.build(None, mixed_precision="float32")
    reference.save_weights(init_path)
    ref, _, ref_eval, ref_pred = fit(None, init_path)
    strategy = mmkeras.distribute.strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    out["replicas"] = strategy.num_replicas_in_sync
    out["per_replica_batch"] = mmkeras.distribute.per_replica_batch_size(8, strategy)
    model, _, ev, pred = fit(strategy, init_path)
    out["variable_type"] = type(model.trainable_variables[0].value).__name__
    out["variable_devices"] = sorted({v.device for v in model.trainable_variables[0].value.values})
    out["max_weight_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(ref.get_weights(), model.get_weights()))
    out["max_predict_diff"] = float(np.max(np.abs(ref_pred - pred)))
    out["eval"], out["ref_eval"] = ev, ref_eval
    for policy in ("mixed_float16", "mixed_bfloat16"):
        mp, history, ev, pred = fit(strategy, None, mixed_precision=policy)
        out[policy] = {"loss": history.history["loss"], "optimizer": type(mp.optimizer).__name__,
                       "variable_dtype": mp.trainable_variables[0].dtype, "output_dtype": str(pred.dtype),
                       "eval_loss": ev["loss"]}
    print("RESULT " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
