"""Epoch-indexed shuffling: the order of epoch ``k`` is a pure function of ``(seed, k)``.

``tf.data``'s ``shuffle(reshuffle_each_iteration=True)`` draws each pass's
order from a seed generator that restarts with the process, so a run killed
after epoch ``k`` and resumed replays epoch 0's order at epoch ``k`` and ends
with different weights. Here each pass permutes the (in-memory) elements with
``stateless_shuffle(seed, epoch)``, where ``epoch`` is a counter the dataset
advances on every pass; :class:`mmkeras.distribute.BackupAndRestore` sets it
to Keras' epoch at every epoch start (:func:`set_epoch`), so a resumed run sees
the same orders as an uninterrupted one.
"""

import weakref

import numpy as np
import tensorflow as tf

# Counters of the epoch-shuffled datasets alive in this process (a dataset keeps its own alive).
_COUNTERS = weakref.WeakSet()


class _EpochCounter:
    """The pass number of one dataset: a lookup table (not a variable, so no strategy mirrors it)."""

    def __init__(self):
        self.table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)

    def next(self):
        epoch = self.table.lookup(tf.constant(0, tf.int64))
        with tf.control_dependencies([epoch]):
            update = self.table.insert(tf.constant(0, tf.int64), epoch + 1)
        with tf.control_dependencies([update]):
            return tf.identity(epoch)

    def set(self, epoch):
        self.table.insert(tf.constant(0, tf.int64), tf.constant(int(epoch), tf.int64))


def epoch_shuffle(dataset, n, seed=None):
    """``dataset`` (``n`` unbatched elements) in a new order every pass, the order of pass ``k`` fixed by ``(seed, k)``.

    The elements are batched into one, permuted and unbatched: meant for what
    fits in memory (an index range, in-memory strings), as ``shuffle(n)`` with a
    full buffer also holds them.

    Args:
        dataset: ``tf.data.Dataset`` of ``n`` elements.
        n: int. Its number of elements.
        seed: int or None. None draws one from NumPy's global generator (fixed
            by ``keras.utils.set_random_seed``).

    Returns:
        ``tf.data.Dataset`` with the same elements and cardinality ``n``.

    Example:
    ```python
    ds = epoch_shuffle(tf.data.Dataset.range(10), 10, seed=0)
    set_epoch(3)  # the next pass uses epoch 3's order, whatever came before
    ```
    """
    return _each_pass(dataset, n, seed, shuffle=True, seeds=False)


def epoch_example_seeds(dataset, n, seed=None, shuffle=False):
    """Each element of ``dataset`` with a ``[2]`` int64 seed of its own, new every pass: ``(*element, seed)``.

    The seed of example ``i`` (its position in ``dataset``) in pass ``k`` is
    ``(seed, k * n + i)``: distinct for every example and epoch, the same in a
    resumed run (:func:`set_epoch` sets the pass), whatever the batching. With
    ``shuffle`` the order of each pass is :func:`epoch_shuffle`'s.

    Args:
        dataset: ``tf.data.Dataset`` of ``n`` elements (held in memory each pass, as ``epoch_shuffle``).
        n: int. Its number of elements.
        seed: int or None (None draws one from NumPy's global generator).
        shuffle: bool. Also permute each pass, as :func:`epoch_shuffle`.

    Returns:
        ``tf.data.Dataset`` of ``(*element, seed)`` (a plain element as ``(element, seed)``).

    Example:
    ```python
    ds = epoch_example_seeds(tf.data.Dataset.from_tensor_slices(wavs), len(wavs), seed=0, shuffle=True)
    ```
    """
    return _each_pass(dataset, n, seed, shuffle=shuffle, seeds=True)


def _each_pass(dataset, n, seed, shuffle, seeds):
    """Per pass: the order (``shuffle``) and/or the example seeds (``seeds``) drawn from ``(seed, pass)``."""
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    counter = _EpochCounter()
    _COUNTERS.add(counter)
    seed = tf.constant(int(seed), tf.int64)

    def each_pass(*batch):  # tuple elements arrive as separate arguments
        epoch = counter.next()
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([seed, epoch]))
            batch = tf.nest.map_structure(lambda t: tf.gather(t, order), batch)
        if seeds:
            batch = batch + (tf.stack([tf.fill([n], seed), epoch * n + order], axis=1),)
        return batch[0] if len(batch) == 1 else batch

    out = dataset.batch(max(int(n), 1)).map(each_pass).unbatch()
    out = out.apply(tf.data.experimental.assert_cardinality(int(n)))
    out._mmkeras_epoch_counter = counter  # the weak set alone would let it go while the dataset lives
    return out


def set_epoch(epoch):
    """The next pass of every epoch-shuffled dataset in this process uses ``epoch``'s order.

    Example:
    ```python
    set_epoch(0)  # e.g. at the start of a resumed fit's first epoch, with its epoch number
    ```
    """
    for counter in list(_COUNTERS):
        counter.set(epoch)
