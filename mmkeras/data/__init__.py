"""Input data: manifests -> tf.data, checks of raw inputs, files and labels, readable input errors."""

from mmkeras.data.manifest import Manifest, from_manifest, read_manifest

__all__ = ["Manifest", "from_manifest", "read_manifest"]
