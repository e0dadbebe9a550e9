"""The scheduler: a framework of filter and score plugins (framework.py, plugins/) and the
Scheduler that feeds it pending pods and binds them (scheduler.py). The control plane starts it."""

from nbkube.controlplane.scheduler.framework import (
    Framework,
    NodeInfo,
    PodInfo,
    Result,
    Snapshot,
    failure_message,
    schedule_one,
)
from nbkube.controlplane.scheduler.scheduler import Scheduler, SchedulerStats

__all__ = [
    "Framework",
    "NodeInfo",
    "PodInfo",
    "Result",
    "Scheduler",
    "SchedulerStats",
    "Snapshot",
    "failure_message",
    "schedule_one",
]
