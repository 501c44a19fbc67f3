"""Input data: manifests -> tf.data, and validation of raw in-memory inputs."""

from mmkeras.data.manifest import from_manifest, read_manifest

__all__ = ["from_manifest", "read_manifest"]
