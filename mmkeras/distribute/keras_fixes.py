"""Version-gated fixes that let Keras 3 ``fit`` run under MultiWorkerMirroredStrategy.

Keras 3 (checked up to 3.15.1) breaks in two places when the TensorFlow
trainer runs under ``tf.distribute.MultiWorkerMirroredStrategy`` (upstream:
keras-team/keras#20329, tensorflow/tensorflow#72388, ray-project/ray#47464):

1. ``TensorFlowTrainer._maybe_symbolic_build`` calls ``strategy.reduce("MEAN",
   batch)`` on the whole ``(x, y)`` structure of the first batch, which MWMS
   cannot convert to one tensor ("Attempt to convert a value (...) with an
   unsupported type (<class 'dict'>) to a Tensor"). The batch is only needed
   for its shapes, so we build from this worker's first local replica batch.
2. ``reduce_per_replica`` reduces multi-worker logs with
   ``strategy.reduce("MEAN", v, axis=0)``, which fails on the scalar loss and
   metric values. Metrics are already synchronised across replicas (they are
   ON_READ/SUM variables), so the value is the same everywhere: we reduce
   scalars with ``axis=None``.

The fixes are applied only to Keras versions up to :data:`LAST_BROKEN_KERAS`.
``tests/test_distribute_upstream.py`` runs the unpatched path and fails, saying
this module can go, once a Keras release no longer needs it. Set
``MMKERAS_KERAS_FIXES=0`` to disable (e.g. to check a new Keras), ``=1`` to force.
"""

import logging
import os

import keras

log = logging.getLogger(__name__)

# Newest Keras (major, minor) known to need the fixes; newer versions run unpatched.
LAST_BROKEN_KERAS = (3, 15)
_applied = False


def keras_needs_fixes(version=None):
    """True when ``version`` (default: the installed Keras) is known to need the fixes."""
    major, minor = (int(p) for p in (version or keras.__version__).split(".")[:2])
    return (3, 0) <= (major, minor) <= LAST_BROKEN_KERAS


def _first_local_value(value, strategy):
    import tensorflow as tf

    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def apply_keras_fixes(force=None):
    """Patches the Keras TF trainer for multi-worker ``fit`` (idempotent).

    Args:
        force: None (apply when :func:`keras_needs_fixes` and not disabled by
            ``MMKERAS_KERAS_FIXES=0``), True (always) or False (never).

    Returns:
        bool: whether the fixes are in place after the call.
    """
    global _applied
    if _applied:
        return True
    env = os.environ.get("MMKERAS_KERAS_FIXES")
    if force is None:
        force = {"0": False, "1": True}.get(env, keras_needs_fixes())
    if not force:
        return False
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not tf_trainer._collective_all_reduce_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        # Fix 1 (keras-team/keras#20329): build from a local replica's batch, no cross-worker reduce.
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(lambda v: _first_local_value(v, strategy), next(it))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if not tf_trainer._collective_all_reduce_multi_worker(strategy) or reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)

        # Fix 2 (tensorflow/tensorflow#72388): scalar logs cannot be reduced on axis 0.
        def _reduce(v):
            rank = v.shape.rank if hasattr(v, "shape") else None
            if rank == 0 or isinstance(v, tf.distribute.DistributedValues) and all(
                    t.shape.rank == 0 for t in strategy.experimental_local_results(v)):
                return strategy.reduce("MEAN", v, axis=None)
            return original_reduce(v, strategy, reduction)

        return tree.map_structure(_reduce, values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _applied = True
    log.info("mmkeras: applied Keras %s multi-worker fixes (keras-team/keras#20329)", keras.__version__)
    return True
