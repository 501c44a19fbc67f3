"""Towers wrapping any ``keras_hub.models.Backbone``: text encoders (BERT family) and image backbones.

The backbone comes from a preset keras-hub can resolve offline (a local preset or
Hugging Face-format directory, or a registered weights name such as
``"minilm_l6"``, see :mod:`mmkeras.weights`), or from an architecture config
(``{"class_name": "BertBackbone", "config": {...}}``, randomly initialised: tests,
training from scratch). ``get_config`` stores only the architecture, so a saved
model reloads its own (fine-tuned) weights without the preset files. keras-hub is
imported when such a tower is built, never by ``import mmkeras``
(``pip install mmkeras[pretrained]``).
"""

import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from mmkeras.layers.shapes import chain
from mmkeras.towers.base import TOWERS, Tower, combine_masks
from mmkeras.utils.safe_loading import budgeted_build, refuse_external_reference


def _keras_hub():
    try:
        import keras_hub
    except ImportError as e:
        raise ImportError("keras-hub towers need keras-hub: pip install 'mmkeras[pretrained]' "
                          "(keras-hub==0.32.0 and safetensors)") from e
    return keras_hub


def _preset_path(preset):
    from mmkeras.weights import WEIGHTS, resolve_weights

    return str(resolve_weights(preset)) if preset in WEIGHTS else preset


def _preset_files(preset):
    """The folder of a preset given as a weights name or a local directory; None for other presets."""
    from mmkeras.weights import WEIGHTS

    refuse_external_reference("preset", preset, "keras-hub tower (its implied preprocessing)")

    if preset in WEIGHTS:
        return Path(_preset_path(preset))
    return Path(preset) if Path(str(preset)).is_dir() else None


def _stack_depth(config):
    """Blocks a keras-hub architecture config stacks: its ``num_layers`` and ``*repeats`` values, summed."""
    if isinstance(config, dict):
        return sum(_numbers(v) if "num_layers" in str(k) or "repeats" in str(k) else _stack_depth(v)
                   for k, v in config.items())
    return sum(_stack_depth(v) for v in config) if isinstance(config, list) else 0


def _numbers(value):
    if isinstance(value, (list, tuple)):
        return sum(_numbers(v) for v in value)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _read_json(path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _find_image_converter(config):
    """The ``config`` of the image converter inside a keras-hub ``preprocessor.json``, or None."""
    if not isinstance(config, dict):
        return None
    if "ImageConverter" in str(config.get("class_name", "")):
        return config.get("config", {})
    inner = config.get("config")
    for value in inner.values() if isinstance(inner, dict) else ():
        found = _find_image_converter(value)
        if found is not None:
            return found
    return None


def _hugging_face_image_preprocessing(hf):
    """Image options from a Hugging Face ``preprocessor_config.json`` (its ``size`` and scaling rule)."""
    from mmkeras.modalities.features import normalize_mode

    implied = {}
    size = hf.get("crop_size") or hf.get("size")
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if isinstance(size, dict) and "height" in size and "width" in size:
        implied["height"], implied["width"] = int(size["height"]), int(size["width"])
    elif isinstance(size, dict) and "shortest_edge" in size:
        implied["height"] = implied["width"] = int(size["shortest_edge"])
    implied["resize"] = "crop" if hf.get("do_center_crop") or "shortest_edge" in (size or {}) else "plain"
    # HF: x * rescale_factor, then (x - mean) / std: one affine map on [0, 255] pixels.
    rescale = float(hf.get("rescale_factor", 1 / 255)) if hf.get("do_rescale", True) else 1.0
    mean = np.asarray(hf.get("image_mean", 0.0) if hf.get("do_normalize", True) else 0.0, "float64")
    std = np.asarray(hf.get("image_std", 1.0) if hf.get("do_normalize", True) else 1.0, "float64")
    implied["normalize"] = normalize_mode((rescale / std).tolist(), (-mean / std).tolist())
    return implied


class KerasHubTower(Tower):
    """Base of the towers around a keras-hub backbone.

    Args:
        backbone: dict ``{"class_name": <a keras_hub.models class>, "config": {...}}``
            (an architecture, randomly initialised), a ``keras_hub.models.Backbone``, or None.
        preset: str or None. A keras-hub preset (local directory, Hugging Face-format
            directory, or a name keras-hub resolves) or a registered weights name
            (``"minilm_l6"``). Exactly one of ``backbone`` and ``preset``.
        load_weights: bool. Load the preset's weights (False: its architecture only).
        dim: int or None. None keeps the backbone's width; an int adds a linear
            projection to ``dim``.
        dropout: float. Dropout on the output sequence (training only).
    """

    # Backbone layers whose output the tower never reads: kept frozen (no gradients reach them).
    unused_layers = ()

    def __init__(self, backbone=None, preset=None, load_weights=True, dim=None, dropout=0.0, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        if (backbone is None) == (preset is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of backbone= (an architecture) and "
                             f"preset= (a keras-hub preset or weights name); got backbone={backbone!r}, "
                             f"preset={preset!r}")
        # The preset's folder is read even with load_weights=False (its config, tokenizer, weights file).
        refuse_external_reference("preset", preset, f"{type(self).__name__} tower (load_weights={load_weights!r})")
        hub = _keras_hub()
        if preset is not None:
            self.backbone = hub.models.Backbone.from_preset(_preset_path(preset), load_weights=load_weights,
                                                            dtype=self.dtype_policy, name="backbone")
        elif isinstance(backbone, dict):
            cls = getattr(hub.models, backbone.get("class_name", ""), None)
            if not (isinstance(cls, type) and issubclass(cls, hub.models.Backbone)):
                raise ValueError(f"backbone class_name must name a keras_hub.models Backbone, got "
                                 f"{backbone.get('class_name')!r}")
            # Stacks are counted before they are made; variables are deferred until the budget is checked.
            self.limit_layers("backbone.config num_layers / stackwise repeats", 8 * _stack_depth(backbone))
            with budgeted_build(f"{type(self).__name__} backbone {cls.__name__}", backbone) as budget:
                self.backbone = cls(**{**backbone.get("config", {}), "dtype": self.dtype_policy, "name": "backbone"})
                budget.measure(self.backbone)
        elif isinstance(backbone, hub.models.Backbone):
            self.backbone = backbone
        else:
            raise ValueError(f"backbone must be a dict or a keras_hub.models.Backbone, got {type(backbone).__name__}")
        self.project = keras.layers.Dense(dim, dtype=self.dtype_policy, name="project") if dim is not None else None
        self.drop = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="out_drop")

    def backbone_sequence(self, x, mask=None, training=None):
        """Returns ``(features [B, T, D], mask or None)`` from the backbone."""
        raise NotImplementedError

    def backbone_sequence_shape(self, input_shape):
        raise NotImplementedError

    def encode(self, x, mask=None, training=None):
        sequence, mask = self.backbone_sequence(x, mask=mask, training=training)
        if self.project is not None:
            sequence = self.project(sequence)
        return self.drop(sequence, training=training), mask

    def encode_shape(self, input_shape, build=False):
        after = ([self.project] if self.project is not None else []) + [self.drop]
        return chain(after, self.backbone_sequence_shape(tuple(input_shape)), build)

    def portable_config(self, spec):
        spec = {k: v for k, v in spec.items() if k not in ("preset", "load_weights")}
        return {**spec, "backbone": self.get_config()["backbone"]}

    def layer_groups(self):
        # keras-hub backbones are functional: their layers come input side first (BERT: the
        # embeddings, then transformer_layer_0..N-1), one group per layer that holds weights.
        return [[layer] for layer in self.backbone.layers if layer.weights and layer.name not in self.unused_layers]

    def after_trainable_change(self):
        for layer in self.backbone.layers:
            if layer.name in self.unused_layers:
                layer.trainable = False

    def get_config(self):
        config = self.backbone.get_config()
        for key in ("name", "dtype", "trainable"):  # the tower's own name, policy and flag govern
            config.pop(key, None)
        return {**super().get_config(), "backbone": {"class_name": type(self.backbone).__name__, "config": config}}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("text/keras_hub")
class TextKerasHub(KerasHubTower):
    """A keras-hub text encoder (BERT, RoBERTa, DistilBERT, ...) over token ids (0 = padding).

    ``pooled`` is the masked mean of the sequence (what sentence-transformers models
    such as all-MiniLM-L6-v2 are trained with). The token ids must come from the
    backbone's own vocabulary (for ``minilm_l6``: its ``vocab.txt`` with mmkeras's
    WordPiece tokenizer).

    Args:
        start_token_id: int or None. If set (with ``end_token_id``), each sequence is
            packed as ``[start] ids [end]`` (BERT's ``[CLS]`` ... ``[SEP]``: 101 and
            102 in MiniLM's vocabulary); the sequence grows by two steps.
        end_token_id: int or None. See ``start_token_id``.
        **kwargs: see :class:`KerasHubTower`.

    Example:
    ```python
    tower = TextKerasHub(preset="minilm_l6", start_token_id=101, end_token_id=102)
    out = tower(keras.ops.array([[7592, 2088, 0, 0]]))  # sequence [1, 6, 384], pooled [1, 384]
    ```
    """

    # The tower pools the sequence itself: BERT's pooled_dense ([CLS] -> tanh) would get no gradients.
    unused_layers = ("pooled_dense",)

    def __init__(self, start_token_id=None, end_token_id=None, **kwargs):
        super().__init__(**kwargs)
        if (start_token_id is None) != (end_token_id is None):
            raise ValueError("start_token_id and end_token_id go together (both set, or neither)")
        self.start_token_id, self.end_token_id = start_token_id, end_token_id
        self.after_trainable_change()
        self.backbone_inputs = set(self.backbone.input) if isinstance(self.backbone.input, dict) else set()
        if not {"token_ids", "padding_mask"} <= self.backbone_inputs:
            raise ValueError(f"text/keras_hub needs a backbone taking token_ids and padding_mask; "
                             f"{type(self.backbone).__name__} takes {sorted(self.backbone_inputs) or 'one tensor'}")

    def _packed_length(self, length):
        extra = 2 if self.start_token_id is not None else 0
        return None if length is None else length + extra

    def backbone_sequence(self, x, mask=None, training=None):
        ids = ops.cast(x, "int32")
        valid = combine_masks(ops.not_equal(ids, 0), mask)
        if self.start_token_id is not None:
            # Right-padded ids -> [start] ids [end] pad...: the end token goes after the last valid id.
            batch = ops.shape(ids)[0]
            positions = ops.arange(ops.shape(ids)[1] + 2)[None, :]
            end_at = ops.sum(ops.cast(valid, "int32"), axis=1, keepdims=True) + 1
            ids = ops.concatenate([ops.full((batch, 1), self.start_token_id, "int32"),
                                   ops.where(valid, ids, 0), ops.zeros((batch, 1), "int32")], axis=1)
            ids = ops.where(positions == end_at, self.end_token_id, ids)
            valid = positions <= end_at
        max_length = getattr(self.backbone, "max_sequence_length", None)
        if max_length is not None and ids.shape[1] is not None and ids.shape[1] > max_length:
            raise ValueError(f"text/keras_hub: {ids.shape[1]} token positions exceed the backbone's "
                             f"max_sequence_length={max_length}; shorten the text sequence_length")
        inputs = {"token_ids": ids, "padding_mask": ops.cast(valid, "int32")}
        if "segment_ids" in self.backbone_inputs:
            inputs["segment_ids"] = ops.zeros_like(ids)
        out = self.backbone(inputs, training=training)
        return (out["sequence_output"] if isinstance(out, dict) else out), valid

    def backbone_sequence_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"text/keras_hub takes [B, T] token ids, got shape {input_shape}")
        b, t = input_shape
        return (b, self._packed_length(t), self.backbone.hidden_dim)

    @classmethod
    def implied_preprocessing(cls, options):
        """A BERT-family preset implies WordPiece over its own vocabulary with its normalisation.

        Reads the folder of ``preset`` (a weights name or a local directory): the
        vocabulary (``vocab.txt``, Hugging Face format, or keras-hub's
        ``assets/tokenizer/vocabulary.txt``) and whether it is uncased (Hugging Face's
        ``tokenizer_config.json`` ``do_lower_case`` / ``strip_accents``, keras-hub's
        ``tokenizer.json`` ``lowercase``). Uncased: BERT's normalisation (case folding,
        accents stripped, control characters removed, CJK split); cased: punctuation
        kept, nothing lowercased.
        """
        from mmkeras.modalities.text import BERT_NORMALIZATION, read_vocabulary

        folder = _preset_files(options.get("preset")) if options.get("preset") is not None else None
        if folder is None:
            return {}
        vocab = next((p for p in (folder / "vocab.txt", folder / "assets" / "tokenizer" / "vocabulary.txt")
                      if p.is_file()), None)
        if vocab is None:
            return {}
        hf = _read_json(folder / "tokenizer_config.json")
        hub = _read_json(folder / "tokenizer.json").get("config", {})
        lowercase = bool(hf.get("do_lower_case", hub.get("lowercase", True)))
        strip_accents = lowercase if hf.get("strip_accents") is None else bool(hf["strip_accents"])
        normalization = dict(BERT_NORMALIZATION) if lowercase else {
            **BERT_NORMALIZATION, "lowercase": False, "case_fold": False}
        normalization["strip_accents"] = strip_accents
        return {"tokenizer": "wordpiece", "vocabulary_file": str(vocab), "vocab_size": len(read_vocabulary(vocab)),
                **normalization}

    def get_config(self):
        return {**super().get_config(), "start_token_id": self.start_token_id, "end_token_id": self.end_token_id}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("image/keras_hub")
class ImageKerasHub(KerasHubTower):
    """A keras-hub image backbone (CNN feature map or ViT-style token sequence) over ``[B, H, W, C]`` images.

    A 4-D feature map becomes one token per cell; a 3-D output is used as it is.
    A ``preset`` implies the image preprocessing (size, resize rule, pixel scaling
    from its image converter, see :meth:`implied_preprocessing`); with an
    architecture ``backbone`` set them in the preset yourself. Freezing
    (``tower.trainable = False``) keeps BatchNorm in inference mode.

    Args:
        **kwargs: see :class:`KerasHubTower`.

    Example:
    ```python
    tower = ImageKerasHub(backbone={"class_name": "VGGBackbone",
                                    "config": {"stackwise_num_repeats": [1], "stackwise_num_filters": [8]}})
    out = tower(keras.ops.zeros((2, 32, 32, 3)))  # sequence [2, 256, 8]
    ```
    """

    accepts_mask = False

    @classmethod
    def implied_preprocessing(cls, options):
        """An image preset implies its input size, resize rule and pixel scaling.

        Read from the preset folder (a weights name or a local directory): keras-hub's
        ``preprocessor.json`` (the image converter's ``image_size``, ``scale``,
        ``offset``, ``crop_to_aspect_ratio`` / ``pad_to_aspect_ratio``), or a Hugging
        Face ``preprocessor_config.json`` (``size``, ``do_rescale`` /
        ``rescale_factor``, ``do_normalize`` / ``image_mean`` / ``image_std``). The
        scaling becomes a named ``normalize`` mode where one matches, else
        ``{"scale": ..., "offset": ...}``, so the exported model scales raw bytes
        exactly as the backbone was trained.
        """
        from mmkeras.modalities.features import normalize_mode

        folder = _preset_files(options.get("preset")) if options.get("preset") is not None else None
        if folder is None:
            return {}
        converter = _find_image_converter(_read_json(folder / "preprocessor.json"))
        if converter is not None:
            implied = {"normalize": normalize_mode(converter.get("scale"), converter.get("offset"))}
            if converter.get("image_size"):
                implied["height"], implied["width"] = (int(d) for d in converter["image_size"])
            implied["resize"] = ("crop" if converter.get("crop_to_aspect_ratio") else
                                 "pad" if converter.get("pad_to_aspect_ratio") else "plain")
            return implied
        hf = _read_json(folder / "preprocessor_config.json")
        if not hf:
            return {}
        return _hugging_face_image_preprocessing(hf)

    def backbone_sequence(self, x, mask=None, training=None):
        out = self.backbone(x, training=training)
        if isinstance(out, dict):
            raise ValueError(f"image/keras_hub needs a backbone with one output; "
                             f"{type(self.backbone).__name__} gives {sorted(out)}")
        if len(out.shape) == 4:
            out = ops.reshape(out, (ops.shape(out)[0], -1, out.shape[-1]))
        return out, None

    def backbone_sequence_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"image/keras_hub takes [B, H, W, C] images, got shape {input_shape}")
        shape = tuple(self.backbone.compute_output_spec(keras.KerasTensor(input_shape)).shape)
        if len(shape) == 4:
            b, h, w, c = shape
            return (b, h * w if h is not None and w is not None else None, c)
        return shape
