"""nbkube: a small, real container orchestrator after Kubernetes that lives first in a Jupyter notebook."""

import logging

__version__ = "0.1.0"

# A library's loggers print nothing unless the application asks (logging.basicConfig, or
# nbkube.logutil.show_logs(), which the `nbkube` command calls): without this, Python's last-resort
# handler would write every warning of a background thread into whichever notebook cell runs.
logging.getLogger(__name__).addHandler(logging.NullHandler())



def load_ipython_extension(ip: object) -> None:
    """`%load_ext nbkube`: register the `%nbkube` magics.

    Loaded by name so that `import nbkube` stays light and the lower layers that import `nbkube`
    (for `__version__`) do not pull in the notebook layer.
    """
    import importlib

    importlib.import_module("nbkube.notebook.magics").load_ipython_extension(ip)


def unload_ipython_extension(ip: object) -> None:
    import importlib

    importlib.import_module("nbkube.notebook.magics").unload_ipython_extension(ip)


def __getattr__(name: str) -> object:
    """`nbkube.LocalCluster` / `nbkube.connect` / `nbkube.examples`, imported on first use (by name,
    for the same reason)."""
    import importlib

    if name in ("LocalCluster", "connect"):
        return getattr(importlib.import_module("nbkube.cluster"), name)
    if name == "examples":
        return importlib.import_module("nbkube.examples")
    raise AttributeError(f"module 'nbkube' has no attribute {name!r}")
