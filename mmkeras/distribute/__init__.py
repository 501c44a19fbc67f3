"""tf.distribute for mmkeras: strategy choice, sharding, chief-only outputs, fault tolerance, local launcher.

Example:
```python
strategy = mmkeras.distribute.strategy("auto")   # MWMS / TPU / Mirrored / default
with strategy.scope():
    model = mmkeras.build_model("image_audio_text_small", num_classes=10, batch_size=64)  # global batch
callbacks = mmkeras.distribute.prepare_callbacks(mmkeras.callbacks.default("logs"), backup_dir="backup")
model.fit(x, y, epochs=3, callbacks=callbacks)
mmkeras.export_saved_model(model, "saved_models/demo")   # every worker calls it; the chief keeps it
```
See docs/distributed.md.
"""

from mmkeras.distribute.backup import BackupAndRestore, prepare_callbacks
from mmkeras.distribute.cluster import (
    is_chief,
    is_multi_worker,
    num_replicas,
    per_replica_batch_size,
    task,
    tf_config,
)
from mmkeras.distribute.keras_fixes import apply_keras_fixes, keras_needs_fixes
from mmkeras.distribute.launch import LocalJob, WorkerError, launch_local, local_tf_configs, start_local
from mmkeras.distribute.outputs import cleanup, write_dir, write_path
from mmkeras.distribute.sharding import shuffle_seed, with_sharding
from mmkeras.distribute.strategy import strategy

__all__ = [
    "BackupAndRestore", "LocalJob", "WorkerError", "apply_keras_fixes", "cleanup",
    "is_chief", "is_multi_worker", "keras_needs_fixes", "launch_local", "local_tf_configs", "num_replicas",
    "per_replica_batch_size", "prepare_callbacks", "shuffle_seed", "start_local", "strategy", "task", "tf_config",
    "with_sharding", "write_dir", "write_path",
]
