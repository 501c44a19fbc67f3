"""Who am I in the cluster: TF_CONFIG parsing, chief detection, replica counts.

Everything here reads the environment (``TF_CONFIG``) or a strategy object and
never creates one, so it is safe to call before TensorFlow initialises devices.
"""

import json
import os

import tensorflow as tf


def tf_config():
    """Returns the parsed ``TF_CONFIG`` (``{}`` when unset or empty).

    Raises:
        ValueError: when ``TF_CONFIG`` is set but is not a JSON object.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from err
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {type(config).__name__}")
    return config


def num_tasks(config=None):
    """Number of worker-like tasks (chief + worker) named in ``TF_CONFIG``'s cluster."""
    cluster = (tf_config() if config is None else config).get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def task(config=None):
    """``(type, index)`` of this process from ``TF_CONFIG`` (``("worker", 0)`` when unset)."""
    spec = (tf_config() if config is None else config).get("task", {})
    return spec.get("type", "worker"), int(spec.get("index", 0))


def model_strategy(model):
    """The ``tf.distribute`` strategy ``model`` trains under, or None where its backend has none.

    Only TensorFlow-backend Keras models carry ``distribute_strategy``; under JAX (with
    TensorFlow installed for the input pipeline) there is none, and every helper here
    takes None as "this single process".

    Example:
    ```python
    is_chief(model_strategy(model))
    ```
    """
    return getattr(model, "distribute_strategy", None)


def is_chief(strategy=None):
    """True on the process that owns shared outputs (checkpoints, logs, exports).

    The chief is the ``chief`` task if the cluster has one, else ``worker`` 0
    (the convention MultiWorkerMirroredStrategy uses). Single-process runs are
    always chief.

    Args:
        strategy: a ``tf.distribute.Strategy`` or None. When given and it is a
            multi-worker strategy, its own task type/id are used.

    Example:
    ```python
    if mmkeras.distribute.is_chief():
        print("I write the checkpoints")
    ```
    """
    extended = getattr(strategy, "extended", None)
    if extended is not None and getattr(extended, "_in_multi_worker_mode", lambda: False)():
        task_type, task_id = extended._task_type, extended._task_id  # noqa: SLF001 (no public accessor)
        if task_type is None:
            return True
        has_chief = bool(tf_config().get("cluster", {}).get("chief"))
        return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    config = tf_config()
    if num_tasks(config) <= 1:
        return True
    task_type, index = task(config)
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)


def is_multi_worker(strategy=None):
    """True when ``strategy`` (or the current one) spans several processes."""
    strategy = strategy or tf.distribute.get_strategy()
    extended = strategy.extended
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def num_replicas(strategy=None):
    """Replicas that split each global batch (``strategy.num_replicas_in_sync``)."""
    return int((strategy or tf.distribute.get_strategy()).num_replicas_in_sync)


def per_replica_batch_size(global_batch_size, strategy=None):
    """The batch each replica sees: ``global_batch_size / num_replicas``.

    mmkeras (like Keras) treats ``batch_size`` as the GLOBAL batch: one
    optimizer step consumes ``global_batch_size`` examples, split evenly over
    the replicas, and the loss is averaged over the global batch. Keep the
    global batch (and learning rate) when adding devices to keep the same
    training dynamics; scale both to trade them for throughput.

    Raises:
        ValueError: when the global batch does not split evenly.

    Example:
    ```python
    with strategy.scope():
        model = mmkeras.build_model("image_small", num_classes=10, batch_size=64)
    mmkeras.distribute.per_replica_batch_size(64, strategy)  # 32 on 2 replicas
    ```
    """
    replicas = num_replicas(strategy)
    if global_batch_size % replicas:
        raise ValueError(f"global batch size {global_batch_size} does not split evenly over {replicas} replicas; "
                         f"use a multiple of {replicas}")
    return global_batch_size // replicas
