"""The registry layer: typed CRUD + watch + apply over the store, with admission plugins."""

from nbkube.registry.admission import AdmissionPlugin
from nbkube.registry.registry import LAST_APPLIED, Registry, RegistryEvent, RegistryWatch, register_preserve

__all__ = [
    "AdmissionPlugin",
    "LAST_APPLIED",
    "Registry",
    "RegistryEvent",
    "RegistryWatch",
    "register_preserve",
]
