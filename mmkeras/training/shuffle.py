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
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    counter = _EpochCounter()
    _COUNTERS.add(counter)
    seed = tf.constant(int(seed), tf.int64)

    def permute(*batch):  # tuple elements arrive as separate arguments
        epoch = counter.next()
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        permuted = tf.nest.map_structure(lambda t: tf.gather(t, order), batch)
        return permuted[0] if len(batch) == 1 else permuted

    shuffled = dataset.batch(max(int(n), 1)).map(permute).unbatch()
    shuffled = shuffled.apply(tf.data.experimental.assert_cardinality(int(n)))
    shuffled._mmkeras_epoch_counter = counter  # the weak set alone would let it go while the dataset lives
    return shuffled


def set_epoch(epoch):
    """The next pass of every epoch-shuffled dataset in this process uses ``epoch``'s order.

    Example:
    ```python
    set_epoch(0)  # e.g. at the start of a resumed fit's first epoch, with its epoch number
    ```
    """
    for counter in list(_COUNTERS):
        counter.set(epoch)
