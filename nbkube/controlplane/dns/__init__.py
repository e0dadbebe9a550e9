"""Cluster DNS: Service and pod names answered from the API, the rest forwarded upstream.

`zone.py` holds the records (pure), `server.py` the UDP/TCP server built on dnslib, `component.py`
the informers that feed the zone and the `kube-system/kube-dns` Service that pods reach it at.
"""
