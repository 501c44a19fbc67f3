"""The one place mmkeras's version is written.

``setup.py`` reads this file as text (installing must not import mmkeras and with it
Keras), and ``mmkeras.__version__`` re-exports it.
"""

__version__ = "0.2.0"
