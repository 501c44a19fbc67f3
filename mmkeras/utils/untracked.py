"""A holder that keeps a value out of Keras' and TensorFlow's attribute tracking."""


class Untracked:
    """Holds a value out of Keras/TF object tracking.

    A dataset, a traced function or symbolic tensors assigned to a model attribute
    would be tracked (and TF SavedModel export then tries to serialise them); held
    here they are plain Python state.

    Example:
    ```python
    self._holder = Untracked(None)
    self._holder.value = dataset
    ```
    """

    def __init__(self, value):
        self.value = value
