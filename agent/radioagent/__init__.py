"""radioagent: the node agent of a self-healing Icecast cluster."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("radioagent")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
