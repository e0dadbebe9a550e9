"""nbkube: a small, real container orchestrator after Kubernetes that lives first in a Jupyter notebook."""

__version__ = "0.1.0"


def load_ipython_extension(ip: object) -> None:
    """`%load_ext nbkube`: register the `%nbkube` magics (imported here so `import nbkube` stays light)."""
    from nbkube.notebook.magics import load_ipython_extension as load

    load(ip)  # type: ignore[arg-type]


def unload_ipython_extension(ip: object) -> None:
    from nbkube.notebook.magics import unload_ipython_extension as unload

    unload(ip)  # type: ignore[arg-type]
