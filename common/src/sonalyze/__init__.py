"""Sonalyze shared library.

Code that more than one service needs lives here: service plumbing (settings, health, metrics,
logging, internal auth), the storage API models and its typed HTTP client, and the local stack.
Nothing in this package creates settings, engines or clients at import time.
"""

__version__ = "0.1.0"
