"""The base of every task: a functional model over a backbone, compile defaults, raw inputs.

A task (classifier, contrastive embedder, ...) is a functional Keras model whose
inputs are its backbone's feature inputs and whose outputs come from task layers
applied to the backbone's outputs. It is built *flat* over the backbone's layers
(the backbone is not nested as one layer), so ``.keras`` files keep the layout
earlier mmkeras versions wrote. ``task.backbone`` is the same layers as a model of
their own.

Raw inputs (bytes and strings) in ``fit``/``evaluate``/``predict`` go one way:
:mod:`mmkeras.data.pipeline` prepares them (validation, ``tf.data``, caching) and
returns what Keras gets; the task's :class:`~mmkeras.preprocessing.Preprocessor`
turns them into features; the model runs. The task owns its state (last
validation data, the direct-predict graph) and calls Keras itself; the pipeline
never writes to it. Feature tensors go straight to Keras. The preprocessor and
the pipelines need TensorFlow; the model itself does not.
"""

import json
import os

import keras

from mmkeras.modalities import is_raw_input
from mmkeras.training.optimizers import build_optimizer, scale_learning_rates
from mmkeras.utils.tensorflow import require_tensorflow, tensorflow_available
from mmkeras.utils.untracked import Untracked


class Task(keras.Model):
    """Base class of tasks (subclasses build a backbone and task layers, then call ``__init__``).

    Who owns what: the backbone holds the architecture (its config has no task
    keys); the task holds the task keys (``heads``, ``training``, ``name``, its own
    section) in :attr:`mm_config`, together with the backbone's architecture and the
    preprocessor's options, so one config rebuilds all three from a ``.keras`` file.

    Args:
        backbone: a :class:`~mmkeras.models.MultimodalBackbone`.
        outputs: the task's output tensors, computed from ``backbone.output``.
        config: dict. The resolved preset (kept in the ``.keras`` config).
        preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor` built by hand (its
            modalities and feature shapes must match the backbone's), or bool: build
            one from the config (needs TensorFlow); ``"auto"`` builds it when
            TensorFlow can be imported.
    """

    def __init__(self, backbone, outputs, config, preprocessor="auto", **kwargs):
        super().__init__(inputs=backbone.input, outputs=outputs, name=kwargs.pop("name", config["name"]), **kwargs)
        self.backbone = backbone
        self.modalities = list(backbone.modalities)
        if preprocessor == "auto":
            preprocessor = tensorflow_available()
        if not isinstance(preprocessor, bool):  # one built by hand: the config records its options
            config = self._with_preprocessor(config, preprocessor)
        # Kept (and saved) without pretrained-weights sources: the archive holds the weights.
        self.mm_config = self._portable_config(config)
        for m, blocks in config["training"].get("trainable_blocks", {}).items():
            self.unfreeze(m, top_blocks=blocks)
        if isinstance(preprocessor, bool):
            preprocessor = self._make_preprocessor(config) if preprocessor else None
        self.preprocessor = preprocessor
        self._validation_holder = Untracked(None)
        self._direct_predict_holder = Untracked(None)  # built on the first small raw predict

    def _with_preprocessor(self, config, preprocessor):
        """``config`` with a hand-built preprocessor's options; its features must be what the backbone takes."""
        if not hasattr(preprocessor, "feature_shapes") or not hasattr(preprocessor, "preprocess_batch"):
            raise ValueError(f"preprocessor must be a mmkeras Preprocessor, True, False or 'auto', "
                             f"got {type(preprocessor).__name__}")
        if list(preprocessor.modalities) != self.modalities:
            raise ValueError(f"the preprocessor takes modalities {list(preprocessor.modalities)} but the backbone "
                             f"takes {self.modalities}")
        given = preprocessor.feature_shapes()
        for name, tensor in self.backbone.input.items():
            expected = (tuple(tensor.shape[1:]), tensor.dtype)
            got = given.get(name)
            if got is None or (tuple(got[0]), got[1]) != expected:
                raise ValueError(f"the preprocessor gives feature {name!r} as {got} but the backbone takes "
                                 f"{expected}: build both from the same modality options")
        config = json.loads(json.dumps(config))
        for m in self.modalities:
            config["modalities"][m]["preprocessing"] = preprocessor.config[m]
        return config

    @staticmethod
    def composed_config(backbone, config, **task_keys):
        """A task config over a backbone built by hand: its architecture plus the task's keys.

        Args:
            backbone: a :class:`~mmkeras.models.MultimodalBackbone`.
            config: must be None (a task is built from a preset config *or* a backbone).
            **task_keys: the task's keys (``heads``, ``training``, ``name``, ...); None ones are left out.
        """
        if config is not None:
            raise ValueError("pass a preset config or backbone=..., not both (the backbone is the architecture)")
        return {**backbone.backbone_config, **{k: v for k, v in task_keys.items() if v is not None}}

    @staticmethod
    def backbone_output(backbone, key, what):
        """``backbone.output[key]``, or an error saying which backbone ``what`` needs."""
        if key not in backbone.output:
            raise ValueError(f"{what} needs a backbone with output {key!r}; this one gives {sorted(backbone.output)} "
                             f"(fusion: {backbone.backbone_config.get('fusion')})")
        return backbone.output[key]

    @classmethod
    def from_preset(cls, preset, preprocessor="auto", compile=True, mixed_precision=None, **overrides):
        """This task built from a preset: backbone, task layers and preprocessor, freshly initialised.

        Args:
            preset: str or dict. A registered preset name (:func:`mmkeras.list_presets`) or a preset dict;
                it must suit this task (a ``contrastive`` section for :class:`ContrastiveModel`, ``vae``
                for :class:`MultimodalVAE`).
            preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor`, or bool or ``"auto"`` (see ``Task``).
            compile: bool. Compile with the preset's defaults.
            mixed_precision: str or None. The Keras dtype policy to build with (None: the global one).
            **overrides: top-level preset keys, deep-merged as :func:`mmkeras.build_model` does.

        Returns:
            A task of this class.

        Example:
        ```python
        model = mmkeras.MultimodalVAE.from_preset("image_audio_vae_small", vae={"latent_dim": 8})
        model.mm_config["vae"]["latent_dim"]  # 8
        ```
        """
        from mmkeras.models.preset_config import preset_config  # at call time: the presets package imports tasks

        model = cls(preset_config(preset, mixed_precision=mixed_precision, **overrides), preprocessor=preprocessor)
        if compile:
            model.compile()
        return model

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

    def _portable_config(self, config):
        for m, spec in config["modalities"].items():
            spec["tower"] = self.tower(m).portable_config(spec["tower"])
        return config

    def get_config(self):
        return {"config": self.mm_config, "name": self.name}

    @property
    def last_validation_data(self):
        """The validation data of the current (or last) ``fit``, as Keras received it."""
        return self._validation_holder.value

    def _remember_validation_data(self, value):
        # Kept in a holder set once in __init__, never assigned as an attribute: TF's object
        # tracking would record a dataset assigned to the model (even through a property) and
        # SavedModel export then fails serialising its stateful preprocessing function.
        self._validation_holder.value = value

    # ---- fine-tuning ------------------------------------------------------------------------

    def tower(self, modality):
        """The tower layer of ``modality``.

        Example:
        ```python
        model.tower("text").count_params()
        ```
        """
        if modality not in self.modalities:
            raise ValueError(f"model {self.name!r} has no {modality!r} tower; its modalities: {self.modalities}")
        return self.get_layer(f"{modality}_tower")

    def freeze(self, modality):
        """Freezes a tower's pretrained layers (BatchNorm then runs in inference mode); call ``compile()`` next.

        Layers the tower adds on top of a pretrained network (a projection to
        ``dim``) stay trainable, as do fusion and heads. Same as
        ``unfreeze(modality, top_blocks=0)``; a preset does it with
        ``training: {"trainable_blocks": {modality: 0}}``.

        Example:
        ```python
        model.freeze("text"); model.compile(); model.fit(x, y, epochs=2)      # the head first
        model.unfreeze("text", top_blocks=2); model.compile(learning_rate=...)  # then the top two blocks
        ```
        """
        self.unfreeze(modality, top_blocks=0)

    def unfreeze(self, modality, top_blocks=None):
        """Makes a tower's top ``top_blocks`` blocks trainable (None: all), the others frozen; ``compile()`` next.

        Blocks are the tower's :meth:`~mmkeras.towers.Tower.layer_groups`, input side
        first: EfficientNet-Lite's stem, MBConv blocks and head; a keras-hub BERT's
        embedding layers and transformer layers. Keras builds the training step on
        the next ``compile()``, so call it after changing what trains. The choice is
        saved with the model (``.keras``) and applied again on load.
        """
        if top_blocks is not None and (isinstance(top_blocks, bool) or not isinstance(top_blocks, int)
                                       or top_blocks < 0):
            raise ValueError(f"top_blocks must be an integer >= 0 or None (all), got {top_blocks!r}")
        tower = self.tower(modality)
        groups = tower.layer_groups()
        tower.trainable = True
        first = 0 if top_blocks is None else max(len(groups) - top_blocks, 0)
        for i, group in enumerate(groups):
            for layer in group:
                layer.trainable = i >= first
        tower.after_trainable_change()
        # Recorded in the saved config (``training.trainable_blocks``), so a reloaded model
        # freezes the same blocks: Task.get_config rebuilds from the preset, not layer flags.
        config = self.mm_config
        config["training"].setdefault("trainable_blocks", {})[modality] = top_blocks
        self.mm_config = config

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

    def with_tower_learning_rates(self, optimizer):
        """``optimizer`` with the preset's ``training.learning_rate_multipliers`` applied per tower.

        ``compile`` calls it, so a tower at factor 0.1 learns at a tenth of the rate
        whichever optimizer is passed (also after a ``.keras`` reload). The factor
        applies to the tower's :meth:`~mmkeras.towers.Tower.layer_groups` (a pretrained
        network); layers the tower adds on top (a projection to ``dim``) get the full rate.
        """
        multipliers = self.mm_config["training"].get("learning_rate_multipliers") or {}
        if not multipliers:
            return optimizer
        optimizer = keras.optimizers.get(optimizer)
        return scale_learning_rates(optimizer, [(self._pretrained_weights(m), f) for m, f in multipliers.items()])

    def _pretrained_weights(self, modality):
        """The weights of a tower's layer groups (all of it for towers without pretrained blocks)."""
        return [w for group in self.tower(modality).layer_groups() for layer in group for w in layer.weights]

    @staticmethod
    def default_jit_compile():
        """XLA under JAX (its fast path); none under TensorFlow (on CPU its compile costs tens of seconds)."""
        return keras.backend.backend() == "jax"

    def compile_own_loss(self, optimizer="auto", jit_compile="auto", **kwargs):
        """Compiles a task whose ``compute_loss`` is its objective (contrastive, VAE): the preset's
        ``training`` optimizer; Keras ``loss``/``metrics``/``loss_weights`` arguments do not apply."""
        if optimizer == "auto":
            optimizer = self.default_optimizer()
        optimizer = self.with_tower_learning_rates(optimizer)
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

    def _raw(self, allow_outside=False):
        self.require_preprocessor()  # names TensorFlow before anything tries to import it
        from mmkeras.data.pipeline import RawInputs

        return RawInputs(self, allow_outside=allow_outside)

    def _direct_predict(self):
        """The cached raw-strings -> outputs graph for small predicts (built once, kept untracked)."""
        if self._direct_predict_holder.value is None:
            from mmkeras.data.pipeline import direct_predict_function

            self._direct_predict_holder.value = direct_predict_function(self, self.require_preprocessor(),
                                                                        self.modalities)
        return self._direct_predict_holder.value

    def _build_optimizer(self):
        """Creates the optimizer's variables before ``fit`` traces the train step.

        Without a ``tf.distribute`` strategy, Keras's TensorFlow trainer builds the optimizer
        inside the first traced train step (``_maybe_symbolic_build`` returns early), and a
        ``tf.function`` that creates variables is traced twice. Built here, as Keras itself does
        under a strategy, the step is traced once: the first ``fit`` of ``image_audio_text_small``
        costs 5 CPU-s less (19 -> 14 measured), with the same variables.
        """
        optimizer, preprocessor = getattr(self, "optimizer", None), getattr(self, "preprocessor", None)
        # The preprocessor and its sublayers (a text vectorizer's StringLookup stays unbuilt) run in
        # tf.data, not in the step, and have no trainable variables.
        outside = {id(layer) for layer in preprocessor._flatten_layers()} if preprocessor is not None else set()
        unbuilt = [layer for layer in self._flatten_layers() if not layer.built and id(layer) not in outside]
        if optimizer is None or optimizer.built or getattr(self, "_distribute_strategy", None) is not None or unbuilt:
            return
        optimizer.build(self.trainable_variables)

    @staticmethod
    def _takes_raw(x):
        """Whether ``x`` is raw input (:func:`mmkeras.modalities.is_raw_input`)."""
        return is_raw_input(x)

    def _uses_pipeline(self, x):
        """Whether ``fit``/``evaluate``/``predict`` send ``x`` through :mod:`mmkeras.data.pipeline`:
        always with a preprocessor (it also checks the labels of feature arrays); without one
        only raw input does (and gets the error that names TensorFlow)."""
        return self.preprocessor is not None or self._takes_raw(x)

    def adapt(self, x, allow_outside=False):
        """Learns the preprocessing state (the text vocabulary, any modality's ``adapt``) from raw training inputs.

        ``fit`` on raw inputs, a raw dataset or a manifest does it when a state
        still needs data, e.g. an empty vocabulary (training data only:
        ``evaluate``/``predict`` raise a ValueError saying to call this); call it
        yourself to learn it from other values first.

        Args:
            x: a raw input dict (each stateful modality's values are used), a list
                of strings or a ``tf.data.Dataset`` of strings (text values), or a
                manifest path (its columns).
            allow_outside: bool. As in :meth:`fit`, for a manifest path.

        Example:
        ```python
        model.adapt({"text": captions})  # or model.adapt("train.csv")
        ```
        """
        preprocessor = self.require_preprocessor()
        if isinstance(x, (str, os.PathLike)):
            from mmkeras.data.manifest import load_manifest

            manifest = load_manifest(x, model=self, check_files=False, allow_outside=allow_outside)
            x = {m: manifest.adapt_values(m) for m in preprocessor.unadapted() if m in manifest.columns}
        preprocessor.adapt(x)

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False, verbose=0):
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
            verbose: 0, 1 or 2. With ``cache``: a progress bar (1) or one line (2)
                while the examples are preprocessed.
        """
        return self._raw().make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, cache=cache,
                                        verbose=verbose)

    def map_raw_dataset(self, dataset):
        """Applies preprocessing to a ``tf.data.Dataset`` of raw examples (batched or not)."""
        return self._raw().map_dataset(dataset)

    def preprocess(self, x, batch_size=256, verbose=0):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees).

        Args:
            x: dict of raw inputs.
            batch_size: int. Examples per preprocessing batch.
            verbose: 0, 1 (progress bar) or 2 (one line).

        Example:
        ```python
        features = model.preprocess({"image": pngs, "audio": wavs})
        model.predict(features)  # same scores as model.predict on the raw inputs
        ```
        """
        return self._raw().preprocess(x, batch_size=batch_size, verbose=verbose)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, cache=True, allow_outside=False, **kwargs):
        """Keras ``fit`` that also takes raw inputs and manifests.

        ``x`` may be a raw dict (``{"image": [png bytes, ...], "text": [...]}``), a
        manifest file (CSV/JSONL, see :func:`mmkeras.data.from_manifest`), a raw or
        feature ``tf.data.Dataset``, or feature arrays. On raw inputs the text
        vocabulary is learned from the training data if still empty, examples are
        preprocessed in ``tf.data`` (with ``cache``, once before the first epoch,
        with a progress bar; the features then kept in memory), and
        ``validation_split`` holds out the last fraction, as Keras does. Labels
        may be class indices or, when the model has ``class_names``, the names.
        ``validation_data`` may be a dataset, a manifest file, ``(x, y)``, or a raw
        dict with a ``label`` key. ``allow_outside=True`` lets manifest paths be
        absolute or lead outside the manifest's directory (``evaluate``,
        ``predict``, ``adapt`` and ``mmkeras.evaluation.report`` take it too).

        Example:
        ```python
        model.fit("train.csv", validation_data="val.csv", epochs=5)
        ```
        """
        self._build_optimizer()
        if not self._uses_pipeline(x) and not (validation_data is not None and self._uses_pipeline(validation_data)):
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_split=validation_split, validation_data=validation_data,
                               shuffle=shuffle, **kwargs)
        prepared = self._raw(allow_outside).prepare_fit(
            x, y, batch_size=batch_size, verbose=verbose, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, cache=cache)
        self._remember_validation_data(prepared.validation_data)  # for the TensorBoard confusion matrix
        with prepared.naming_bad_inputs():
            return super().fit(prepared.x, prepared.y, batch_size=prepared.batch_size, epochs=epochs,
                               verbose=verbose, callbacks=callbacks, validation_split=prepared.validation_split,
                               validation_data=prepared.validation_data, shuffle=prepared.shuffle, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """Keras ``train_on_batch``, with the optimizer built before the step is traced (see ``fit``)."""
        self._build_optimizer()
        return super().train_on_batch(x, y, sample_weight=sample_weight, class_weight=class_weight,
                                      return_dict=return_dict)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", allow_outside=False, **kwargs):
        """Keras ``evaluate`` that also takes raw inputs and manifests (see :meth:`fit`)."""
        if not self._uses_pipeline(x):
            return super().evaluate(x, y, batch_size=batch_size, verbose=verbose, **kwargs)
        prepared = self._raw(allow_outside).prepare_evaluate(x, y, batch_size=batch_size)
        with prepared.naming_bad_inputs():
            return super().evaluate(prepared.x, prepared.y, batch_size=prepared.batch_size, verbose=verbose,
                                    **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", allow_outside=False, **kwargs):
        """Keras ``predict`` that also takes raw inputs (see :meth:`fit`).

        Small raw inputs (up to 256 examples, TensorFlow backend) go through one
        cached graph instead of a new tf.data pipeline, so a single prediction
        costs milliseconds rather than a pipeline build.
        """
        if not self._uses_pipeline(x):
            return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        raw = self._raw(allow_outside)
        direct = None if kwargs else raw.direct_inputs(x)
        if direct is not None:
            with direct.naming_bad_inputs():
                out = self._direct_predict()(*direct.x)
            return keras.tree.map_structure(lambda t: t.numpy(), out)
        prepared = raw.prepare_predict(x, batch_size=batch_size)
        with prepared.naming_bad_inputs():
            return super().predict(prepared.x, batch_size=prepared.batch_size, verbose=verbose, **kwargs)
