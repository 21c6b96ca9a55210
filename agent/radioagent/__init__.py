"""radioagent: the node agent of a self-healing Icecast cluster."""

# The one place the version is written (pyproject.toml reads it): nodes run the package
# from copied files, with no installed metadata to ask, and importlib.metadata would
# cost the agent 0.75 MB to ask it.
__version__ = "0.1.0"
