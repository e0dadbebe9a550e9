"""nbkube: a small, real container orchestrator after Kubernetes that lives first in a Jupyter notebook."""

__version__ = "0.1.0"
