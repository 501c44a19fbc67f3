"""The base of every task: a functional model over a backbone, compile defaults, raw inputs.

A task (classifier, contrastive embedder, ...) is a functional Keras model whose
inputs are its backbone's feature inputs and whose outputs come from task layers
applied to the backbone's outputs. It is built *flat* over the backbone's layers
(the backbone is not nested as one layer), so ``.keras`` files keep the layout
earlier mmkeras versions wrote. ``task.backbone`` is the same layers as a model of
their own.

Raw inputs (bytes and strings) in ``fit``/``evaluate``/``predict`` go through the
task's :class:`~mmkeras.preprocessing.Preprocessor` in ``tf.data``
(:mod:`mmkeras.data.pipeline`); feature tensors go straight to Keras. The
preprocessor and the pipelines need TensorFlow; the model itself does not.
"""

import json

import keras

from mmkeras.modalities import modality_order
from mmkeras.training.optimizers import build_optimizer
from mmkeras.utils.tensorflow import require_tensorflow, tensorflow_available


class Task(keras.Model):
    """Base class of tasks (subclasses build a backbone and task layers, then call ``__init__``).

    Args:
        backbone: a :class:`~mmkeras.models.MultimodalBackbone`.
        outputs: the task's output tensors, computed from ``backbone.output``.
        config: dict. The resolved preset (kept in the ``.keras`` config).
        preprocessor: bool. Build the raw-input preprocessor (needs TensorFlow);
            ``"auto"`` builds it when TensorFlow can be imported.
    """

    def __init__(self, backbone, outputs, config, preprocessor="auto", **kwargs):
        super().__init__(inputs=backbone.input, outputs=outputs, name=kwargs.pop("name", config["name"]), **kwargs)
        self.mm_config = config
        self.backbone = backbone
        self.modalities = list(backbone.modalities)
        if preprocessor == "auto":
            preprocessor = tensorflow_available()
        self.preprocessor = self._make_preprocessor(config) if preprocessor else None
        self.last_validation_data = None

    @staticmethod
    def _make_preprocessor(config):
        from mmkeras.preprocessing import Preprocessor

        return Preprocessor({m: spec["preprocessing"] for m, spec in config["modalities"].items()},
                            name="preprocessor")

    # The config is kept as JSON: a plain dict attribute would be wrapped by Keras'
    # attribute tracking, which breaks copy.deepcopy(get_config()).
    @property
    def mm_config(self):
        """The resolved preset config this task was built from (a fresh copy)."""
        return json.loads(self._mm_config_json)

    @mm_config.setter
    def mm_config(self, config):
        self._mm_config_json = json.dumps(config)

    def get_config(self):
        return {"config": self.mm_config, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def require_preprocessor(self):
        """The raw-input preprocessor; a clear error where TensorFlow is missing."""
        if self.preprocessor is None:
            require_tensorflow("raw-input preprocessing (bytes and strings in fit/evaluate/predict)")
            raise ValueError(f"model {self.name!r} was built without a preprocessor (preprocessor=False); "
                             "pass feature tensors, or build it with preprocessor=True")
        return self.preprocessor

    # ---- compile defaults --------------------------------------------------------------------

    def default_optimizer(self):
        """The preset's ``training`` optimizer (AdamW unless the preset names another)."""
        return build_optimizer(self.mm_config["training"])

    @staticmethod
    def default_jit_compile():
        """XLA under JAX (its fast path); none under TensorFlow (on CPU its compile costs tens of seconds)."""
        return keras.backend.backend() == "jax"

    def compile_own_loss(self, optimizer="auto", jit_compile="auto", **kwargs):
        """Compiles a task whose ``compute_loss`` is its objective (contrastive, VAE): the preset's
        ``training`` optimizer; Keras ``loss``/``metrics``/``loss_weights`` arguments do not apply."""
        if optimizer == "auto":
            optimizer = self.default_optimizer()
        if jit_compile == "auto":
            jit_compile = self.default_jit_compile()
        for key in ("loss", "metrics", "loss_weights"):
            kwargs.pop(key, None)
        keras.Model.compile(self, optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        # Our compile() has defaults of its own, so Keras asks us to restore the saved arguments.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    # ---- labels -------------------------------------------------------------------------------

    def validate_labels(self, y, num_examples):
        """Checked labels for ``num_examples`` raw examples (subclasses that take labels override)."""
        raise ValueError(f"model {self.name!r} is trained without labels: call fit(x) without y")

    # ---- raw inputs (TensorFlow; mmkeras/data/pipeline.py) ------------------------------------

    def _raw(self):
        self.require_preprocessor()  # names TensorFlow before anything tries to import it
        from mmkeras.data.pipeline import RawInputs

        return RawInputs(self)

    @staticmethod
    def _takes_raw(x):
        """Raw dicts (keyed by modality, no ``present``) and tf.data datasets go through the pipeline."""
        if isinstance(x, dict):
            return "present" not in x and any(m in x for m in modality_order())
        return type(x).__module__.startswith("tensorflow")

    def adapt(self, x):
        """Learns the preprocessing state (the text vocabulary) from raw training inputs.

        ``fit`` on raw inputs does it on the first call; call it yourself before
        building a ``tf.data`` pipeline of your own.

        Example:
        ```python
        model.adapt({"text": captions})
        ```
        """
        self.require_preprocessor().adapt(x if isinstance(x, dict) else {"text": x})

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False):
        """Raw in-memory inputs -> batched, prefetched ``tf.data.Dataset`` of features.

        Examples are batched first and each batch goes through the preprocessor's
        batch function in parallel ``tf.data`` workers.

        Args:
            x: dict of raw inputs (lists/arrays of bytes or str), already validated.
            y: labels dict ``{head: array}`` or None.
            batch_size: int. Defaults to the preset's batch size.
            shuffle: bool. Reshuffle every epoch.
            seed: int or None. Shuffle seed.
            cache: bool. Preprocess everything once now and keep the features in
                memory; every epoch then slices batches out of them, exactly as
                ``fit`` on in-memory feature arrays does.
        """
        return self._raw().make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, cache=cache)

    def map_raw_dataset(self, dataset):
        """Applies preprocessing to a ``tf.data.Dataset`` of raw examples (batched or not)."""
        return self._raw().map_dataset(dataset)

    def preprocess(self, x, batch_size=256):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees).

        Example:
        ```python
        features = model.preprocess({"image": pngs, "audio": wavs})
        model.predict(features)  # same scores as model.predict on the raw inputs
        ```
        """
        return self._raw().preprocess(x, batch_size=batch_size)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, cache=True, **kwargs):
        """Keras ``fit`` that also takes raw inputs.

        With a raw dict (``{"image": [png bytes, ...], "text": [...]}``) the
        preprocessing state (text vocabulary) is adapted on the training split if
        still empty, examples are preprocessed in ``tf.data`` (with ``cache``, once
        before the first epoch, the features then kept in memory), and
        ``validation_split`` holds out the last fraction, as Keras does.
        """
        if not self._takes_raw(x) and not (validation_data is not None and self._takes_raw(validation_data[0])):
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_split=validation_split, validation_data=validation_data,
                               shuffle=shuffle, **kwargs)
        return self._raw().fit(super().fit, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                               callbacks=callbacks, validation_split=validation_split,
                               validation_data=validation_data, shuffle=shuffle, cache=cache, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", **kwargs):
        """Keras ``evaluate`` that also takes raw inputs (see :meth:`fit`)."""
        if not self._takes_raw(x):
            return super().evaluate(x, y, batch_size=batch_size, verbose=verbose, **kwargs)
        return self._raw().evaluate(super().evaluate, x, y, batch_size=batch_size, verbose=verbose, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Keras ``predict`` that also takes raw inputs (see :meth:`fit`).

        Small raw inputs (up to 256 examples, TensorFlow backend) go through one
        cached graph instead of a new tf.data pipeline, so a single prediction
        costs milliseconds rather than a pipeline build.
        """
        if not self._takes_raw(x):
            return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        return self._raw().predict(super().predict, x, batch_size=batch_size, verbose=verbose, **kwargs)
