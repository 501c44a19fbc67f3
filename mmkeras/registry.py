"""String-keyed registries for the parts a preset names (towers, fusion blocks, heads).

A preset refers to parts by key (``"image/cnn"``, ``"fusion/gated"``); the registry
maps the key to a class, so adding a part is one file plus one decorator line.
"""


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

    def keys(self):
        return sorted(self._items)

    def __contains__(self, key):
        return key in self._items
