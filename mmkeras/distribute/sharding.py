"""Explicit data sharding for multi-worker training.

Keras treats ``batch_size`` as the global batch; ``tf.distribute`` splits each
global batch over the replicas and shards the input over the workers following
the dataset's ``AutoShardPolicy``. mmkeras sets that policy explicitly:

- ``DATA`` for in-memory raw inputs (``model.fit(x_dict, y)``): every worker
  builds the same pipeline and keeps its slice of each global batch, so one
  global step sees exactly the examples a single-process run would. That
  requires every worker to shuffle identically, hence :func:`shuffle_seed`.
- ``FILE`` for sharded manifests/record files: each worker reads a disjoint
  subset of the files (needs at least as many files as workers, and a
  file-reading source such as ``TFRecordDataset`` or ``list_files``).
"""

import logging

import tensorflow as tf

from mmkeras.distribute import cluster

log = logging.getLogger(__name__)

POLICIES = {
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}
# Used when no seed is given under a multi-worker strategy: workers cannot agree on a random one.
SHARED_SHUFFLE_SEED = 1337


def with_sharding(dataset, policy="data"):
    """Returns ``dataset`` with an explicit auto-shard policy for multi-worker runs.

    Args:
        dataset: a ``tf.data.Dataset`` batched by the GLOBAL batch size.
        policy: ``"data"`` (each worker keeps its part of every batch),
            ``"file"`` (each worker reads its own files), ``"auto"`` or ``"off"``
            (every worker sees everything; only if you shard yourself).

    Example:
    ```python
    ds = mmkeras.distribute.with_sharding(tf.data.TFRecordDataset(files).map(parse).batch(64), "file")
    model.fit(ds, epochs=3)
    ```
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown shard policy {policy!r}; expected one of {sorted(POLICIES)}")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = POLICIES[policy]
    return dataset.with_options(options)


def shuffle_seed(seed, strategy=None):
    """The shuffle seed to use: ``seed``, or a fixed shared one under a multi-worker strategy.

    With DATA sharding each worker drops the examples of the other workers'
    slices; if the workers shuffled differently, examples would be duplicated
    or skipped. A fixed seed still reshuffles every epoch.
    """
    if seed is None and cluster.is_multi_worker(strategy):
        log.info("mmkeras.distribute: multi-worker shuffle without a seed; using the shared seed %d",
                 SHARED_SHUFFLE_SEED)
        return SHARED_SHUFFLE_SEED
    return seed


def for_in_memory(dataset, strategy=None):
    """DATA sharding for a pipeline built from in-memory examples (what ``make_dataset`` returns).

    Without it tf.data tries FILE sharding first and falls back with a warning.
    """
    del strategy  # the policy only takes effect under a multi-worker strategy; setting it is harmless otherwise
    return with_sharding(dataset, "data")

