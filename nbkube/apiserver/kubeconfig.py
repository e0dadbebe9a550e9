"""Kubeconfig files for kubectl and the Python client: the writer, re-exported where the API server
and its tests always found it. It lives in the client layer (nbkube/client/kubeconfig.py), beside the
reader, so that code below the API server (`nbkube tenant create` through a cluster's store) can
write kubeconfigs too.
"""

from __future__ import annotations

from nbkube.client.kubeconfig import kubeconfig, write_kubeconfig

__all__ = ["kubeconfig", "write_kubeconfig"]
