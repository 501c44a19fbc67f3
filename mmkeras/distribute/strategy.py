"""Choosing a ``tf.distribute`` strategy: multi-worker, TPU, several GPUs or the default.

Create the strategy at the very start of the program, before any other
TensorFlow op: MultiWorkerMirroredStrategy and TPUStrategy configure the
runtime and fail (or silently run single-worker) once it is initialised.
"""

import logging
import os

import tensorflow as tf

from mmkeras.distribute import cluster
from mmkeras.distribute.keras_fixes import apply_keras_fixes

log = logging.getLogger(__name__)

KINDS = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


def _tpu_available():
    # Cheap hints only: probing the TPU cluster resolver costs seconds (metadata server timeouts).
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0"))


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise RuntimeError(f"no TPU could be reached (tpu={tpu!r}): {err}. On a Cloud TPU VM pass tpu='local'; "
                           f"elsewhere set TPU_NAME or pass the TPU's name/address.") from err
    return tf.distribute.TPUStrategy(resolver)


def _multi_worker_strategy(communication):
    options = tf.distribute.experimental.CommunicationOptions(
        implementation={"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
                        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
                        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}[communication])
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def strategy(kind="auto", devices=None, tpu=None, communication="auto"):
    """Returns a ``tf.distribute.Strategy`` for this machine or cluster.

    ``"auto"`` picks, in order: MultiWorkerMirroredStrategy when ``TF_CONFIG``
    names more than one task (chief + workers); TPUStrategy when a TPU is
    visible (``TPU_NAME``, ``COLAB_TPU_ADDR`` or ``/dev/accel0``);
    MirroredStrategy when more than one GPU is visible; otherwise the default
    (single-device) strategy. Keras 3 fixes needed for multi-worker ``fit`` are
    applied when a multi-worker strategy is returned (see ``keras_fixes``).

    Args:
        kind: one of ``"auto"``, ``"default"``, ``"one_device"``, ``"mirrored"``,
            ``"multi_worker"``, ``"tpu"``.
        devices: list of device names for ``"mirrored"``/``"one_device"``
            (default: all GPUs, or the CPU when there is none).
        tpu: TPU name/address for ``"tpu"`` (``"local"`` on a TPU VM; default
            from ``TPU_NAME``).
        communication: cross-worker all-reduce for ``"multi_worker"``:
            ``"auto"``, ``"ring"`` (gRPC, CPU) or ``"nccl"`` (GPU).

    Returns:
        A ``tf.distribute.Strategy``. Use its ``scope()`` to build the model;
        ``fit`` then runs under it.

    Raises:
        ValueError: for an unknown ``kind`` or a multi-worker request without a
            usable ``TF_CONFIG``.

    Example:
    ```python
    strategy = mmkeras.distribute.strategy("auto")
    with strategy.scope():
        model = mmkeras.build_model("image_audio_text_small", num_classes=10, batch_size=64)  # global batch
    model.fit(x, y, epochs=3)
    ```
    """
    if kind not in KINDS:
        raise ValueError(f"unknown strategy kind {kind!r}; expected one of {KINDS}")
    if kind == "auto":
        if cluster.num_tasks() > 1:
            kind = "multi_worker"
        elif tpu is not None or _tpu_available():
            kind = "tpu"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
        log.info("mmkeras.distribute.strategy('auto') chose %r", kind)
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy((devices or [g.name for g in gpus[:1]] or ["/cpu:0"])[0])
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "tpu":
        return _tpu_strategy(tpu or os.environ.get("TPU_NAME") or "local")
    if cluster.num_tasks() < 1 or "task" not in cluster.tf_config():
        raise ValueError("strategy('multi_worker') needs TF_CONFIG with a 'cluster' and this process's 'task'; "
                         "see docs/distributed.md or use mmkeras.distribute.launch_local()")
    apply_keras_fixes()
    return _multi_worker_strategy(communication)
