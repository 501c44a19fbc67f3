"""``models.config`` for serving several models from one TF Serving process.

TF Serving reads a ``ModelServerConfig`` text proto (``--model_config_file``):
one ``config { name base_path model_platform [model_version_policy] }`` entry
per model inside ``model_config_list``.
"""

import json
import re
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _quote(value):
    # JSON string escaping is valid text-proto escaping for the characters paths hold.
    return json.dumps(str(value), ensure_ascii=False)


def _version_policy(policy):
    if policy in (None, "latest"):
        return None
    if policy == "all":
        return "model_version_policy { all {} }"
    if isinstance(policy, int) and not isinstance(policy, bool):
        return f"model_version_policy {{ latest {{ num_versions: {policy} }} }}"
    versions = list(policy)
    if not versions or not all(isinstance(v, int) and v > 0 for v in versions):
        raise ValueError(f"version policy must be 'latest', 'all', an int (latest N) or a list of positive "
                         f"int versions, got {policy!r}")
    return "model_version_policy { specific { " + " ".join(f"versions: {v}" for v in versions) + " } }"


def models_config_text(base_dirs_by_name, version_policy=None):
    """The ``model_config_list`` text proto for ``{model name: base path}``.

    Args:
        base_dirs_by_name: dict ``{name: base path}``. Paths as the server sees
            them (inside the container for Docker, e.g. ``/models/demo``).
        version_policy: None/``"latest"`` (TF Serving's default: newest version),
            ``"all"``, an int N (newest N), a list of versions, or a dict
            ``{name: one of those}`` per model.

    Returns:
        str: the file contents.

    Raises:
        ValueError: for an empty mapping, a bad model name or version policy.
    """
    if not base_dirs_by_name:
        raise ValueError("base_dirs_by_name is empty: name at least one model")
    entries = []
    for name, base in base_dirs_by_name.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"model name {name!r} must be letters, digits, '_', '-' or '.' (it is part of "
                             f"the REST URL /v1/models/<name>)")
        policy = version_policy.get(name) if isinstance(version_policy, dict) else version_policy
        lines = [f"    name: {_quote(name)}", f"    base_path: {_quote(base)}", '    model_platform: "tensorflow"']
        policy_text = _version_policy(policy)
        if policy_text:
            lines.append(f"    {policy_text}")
        entries.append("  config {\n" + "\n".join(lines) + "\n  }")
    return "model_config_list {\n" + "\n".join(entries) + "\n}\n"


def write_models_config(base_dirs_by_name, path, version_policy=None):
    """Writes a TF Serving ``models.config`` for several models.

    Args:
        base_dirs_by_name: dict ``{name: base path}`` as the server sees the paths.
        path: str or Path of the file to write.
        version_policy: see :func:`models_config_text`.

    Returns:
        str: the path written.

    Example:
    ```python
    mmkeras.export.write_models_config(
        {"avdigits": "/models/avdigits", "sentiment": "/models/sentiment"}, "saved_models/models.config")
    # tensorflow_model_server --model_config_file=/models/models.config --rest_api_port=8501
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(models_config_text(base_dirs_by_name, version_policy))
    return str(path)
