"""String-keyed registries for the parts a preset names (towers, fusion blocks, heads).

A preset refers to parts by key (``"image/cnn"``, ``"fusion/gated"``); the registry
maps the key to a class, so adding a part is one file plus one decorator line. The
registry also knows each part's options (its constructor's arguments), so a preset
with a misspelt option fails with the allowed ones instead of a Keras traceback.
"""

import inspect

import keras

# Constructor arguments the builders set themselves; never preset options.
_RESERVED = {"self", "name", "dtype", "num_modalities"}


def constructor_options(cls):
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up to ``keras.layers.Layer``.

    Example:
    ```python
    constructor_options(mmkeras.towers.ImageCNN)  # {"dim", "dropout", "filters", "kernel_size", ...}
    ```
    """
    names = set()
    for klass in cls.__mro__:
        if klass in (keras.layers.Layer, object):
            break
        if "__init__" not in klass.__dict__:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - _RESERVED


class Registry:
    """Maps string keys to classes of one kind of part.

    Args:
        kind: str. What the registry holds, used in error messages ("tower").

    Example:
    ```python
    TOWERS = Registry("tower")

    @TOWERS.register("image/cnn")
    class ImageCNN(keras.layers.Layer): ...

    TOWERS.get("image/cnn")  # -> ImageCNN
    ```
    """

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, key):
        def decorator(cls):
            if key in self._items and self._items[key] is not cls:
                raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]}")
            self._items[key] = cls
            cls.registry_key = key
            return cls

        return decorator

    def get(self, key):
        if key not in self._items:
            raise ValueError(
                f"Unknown {self.kind} {key!r}. Known {self.kind}s: {', '.join(sorted(self._items))}"
            )
        return self._items[key]

    def build(self, key, **kwargs):
        return self.get(key)(**kwargs)

    def options(self, key):
        """The preset options the part registered under ``key`` accepts."""
        return constructor_options(self.get(key))

    def check_options(self, key, options, where):
        """Raises a ValueError naming ``where``, the unknown option(s) and the allowed ones."""
        unknown = set(options) - self.options(key)
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {sorted(unknown)} for {self.kind} {key!r}; "
                             f"allowed: {sorted(self.options(key))}")

    def keys(self):
        return sorted(self._items)

    def in_order(self):
        """Keys in registration order (modalities: the order of ``present`` columns)."""
        return list(self._items)

    def __contains__(self, key):
        return key in self._items

    def __iter__(self):  # like a dict: the keys (sorted)
        return iter(self.keys())
