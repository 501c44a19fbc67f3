"""Atomic result files (no heavy imports: the startup benchmark times `import` itself)."""

import json
import os
from pathlib import Path


def write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file and ``os.replace``.

    Readers never see half a file, and a crash mid-write keeps the previous results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=1, default=float) + "\n")
