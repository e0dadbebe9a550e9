"""Client machinery every controller, node agent and widget uses on top of the registry:
informers (list + watch caches), the work queue, the controller base, events and leader election."""

from nbkube.client.controller import Controller
from nbkube.client.events import events_dataframe, record_event
from nbkube.client.informer import Informer, InformerFactory
from nbkube.client.leaderelection import LeaderElector
from nbkube.client.workqueue import WorkQueue

__all__ = [
    "Controller",
    "Informer",
    "InformerFactory",
    "LeaderElector",
    "WorkQueue",
    "events_dataframe",
    "record_event",
]
