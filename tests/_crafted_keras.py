"""Crafted ``.keras`` files and a recorder of what loading them touches (files, sockets).

``craft`` rewrites a saved archive's ``config.json`` (an attacker's file is a real
archive with a changed config). ``record_access`` records, until the test ends,
every Python ``open`` / directory listing and socket ``connect`` / ``getaddrinfo``
(audit hooks) and TensorFlow ``GFile`` read.
"""

import json
import sys
import zipfile
from pathlib import Path

import tensorflow as tf

_EVENTS = {"open", "os.listdir", "os.scandir", "socket.connect", "socket.getaddrinfo"}
_SEEN = []  # (event, first argument) while recording
_RECORDING = {0: False}  # a dict so monkeypatch.setitem restores it


def _audit(event, args):
    if _RECORDING[0] and event in _EVENTS and args:
        _SEEN.append((event, str(args[0]) if isinstance(args[0], (str, bytes, Path)) else repr(args[1:2])))


sys.addaudithook(_audit)  # hooks cannot be removed; this one only records while _RECORDING is set


def craft(src, dst, change):
    """Copies the ``.keras`` archive ``src`` to ``dst`` with ``change(config)`` applied to its config.json."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


class Access:
    """What was touched since ``record_access``: ``paths(word)`` and ``sockets()`` filter it."""

    def paths(self, word):
        return [t for e, t in _SEEN if not e.startswith("socket") and word in t]

    def sockets(self):
        return [(e, t) for e, t in _SEEN if e.startswith("socket")]

    def all_paths(self):
        return [t for e, t in _SEEN if not e.startswith("socket")]

    def stop(self):
        _RECORDING[0] = False
        return self


def record_access(monkeypatch):
    """Starts recording until the test ends (or ``.stop()``); returns an :class:`Access` view of it."""
    real_gfile = tf.io.gfile.GFile

    def gfile(path, *args, **kwargs):
        _SEEN.append(("open", str(path)))
        return real_gfile(path, *args, **kwargs)

    monkeypatch.setattr(tf.io.gfile, "GFile", gfile)
    _SEEN.clear()
    monkeypatch.setitem(_RECORDING, 0, True)  # undone (False) when the test ends
    return Access()
