"""StatefulSet controller: ordered start, reverse scale-down, Parallel, rolling update order and
partition, OnDelete, per-pod claims, status and the missing-Service event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nbk_workload_helpers import FakeKubelet, started, wait_for

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.gc import GarbageCollector
from nbkube.controlplane.controllers.statefulset import (
    REVISION_LABEL,
    StatefulSetController,
    claim_name,
    ordinal_of,
    pod_for_ordinal,
)
from nbkube.errors import Invalid, NotFound
from nbkube.registry.registry import Registry


def sts_manifest(
    name: str = "db",
    replicas: int = 3,
    *,
    policy: str = "OrderedReady",
    image: str = "busybox",
    claims: bool = False,
    strategy: dict[str, object] | None = None,
) -> Obj:
    spec: dict[str, object] = {
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": image,
                        "volumeMounts": ([{"name": "data", "mountPath": "/data"}] if claims else []),
                    }
                ]
            },
        },
    }
    if claims:
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
            }
        ]
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def headless(name: str = "db") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80}]},
    }


@pytest.fixture
def ctl(api: Registry, factory: InformerFactory) -> Iterator[StatefulSetController]:
    c = StatefulSetController(api, factory)
    with started(factory, c):
        yield c


def pods(api: Registry, app: str = "db") -> dict[str, Obj]:
    items, _ = api.list("Pod", "default", label_selector=f"app={app}")
    return {p["metadata"]["name"]: p for p in items}


def creation_order(api: Registry, reason: str = "SuccessfulCreate") -> list[str]:
    events, _ = api.list("Event", "default")
    events = [e for e in events if e.get("reason") == reason and "Pod" in e.get("message", "")]
    events.sort(key=lambda e: (e.get("firstTimestamp") or "", int(e["metadata"]["resourceVersion"])))
    return [e["message"].split()[2] for e in events]


def deletion_order(api: Registry) -> list[str]:
    """The pods the controller deleted, in the order of its SuccessfulDelete events."""
    events, _ = api.list("Event", "default")
    return [
        e["message"].split()[2]
        for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e.get("reason") == "SuccessfulDelete"
    ]


def test_ordinal_names_and_pod_identity() -> None:
    sts = sts_manifest(claims=True)
    sts["metadata"]["uid"] = "u1"
    pod = pod_for_ordinal(sts, sts["spec"]["template"], "db-abc", 1)
    assert pod["metadata"]["name"] == "db-1"
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["labels"][REVISION_LABEL] == "db-abc"
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}]
    assert claim_name("data", "db", 2) == "data-db-2"
    assert ordinal_of("db", "db-10") == 10
    assert ordinal_of("db", "db-01") is None and ordinal_of("db", "dbx-1") is None


def test_ordered_ready_starts_one_at_a_time_in_order(api: Registry, ctl: StatefulSetController) -> None:
    kubelet = FakeKubelet(api)
    kubelet.hold = lambda pod: pod["metadata"]["name"] == "db-1"  # db-1 stays not Ready
    kubelet.start()
    try:
        api.create(headless())
        api.create(sts_manifest())
        # db-2 must wait for db-1 to be Ready: the pass that saw db-1 Running but not Ready wrote
        # the status (2 pods, 1 ready) after deciding not to create db-2
        wait_for(
            lambda: (
                (api.get("StatefulSet", "db", "default").get("status") or {}).get("replicas") == 2
                and (pods(api).get("db-1", {}).get("status") or {}).get("phase") == "Running"
            ),
            what="db-1 Running, not Ready",
        )
        ctl.queue.add("default/db")
        for _ in range(10):
            ctl.process_next(timeout=0.01)
        assert set(pods(api)) == {"db-0", "db-1"}
        kubelet.hold = lambda pod: False
        wait_for(lambda: set(pods(api)) == {"db-0", "db-1", "db-2"}, what="db-2")
        assert creation_order(api) == ["db-0", "db-1", "db-2"]
        sts = wait_for(
            lambda: (s := api.get("StatefulSet", "db", "default"))["status"].get("readyReplicas") == 3 and s
        )
        assert isinstance(sts, dict)
        st = sts["status"]
        assert st["replicas"] == 3 and st["currentReplicas"] == 3 and st["updatedReplicas"] == 3
        assert st["currentRevision"] == st["updateRevision"] and st["availableReplicas"] == 3
        assert st["observedGeneration"] == sts["metadata"]["generation"]
    finally:
        kubelet.stop()


def test_scale_down_deletes_highest_ordinal_first(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest(replicas=4))
    wait_for(
        lambda: (
            len(pods(api)) == 4
            and all((p.get("status") or {}).get("phase") == "Running" for p in pods(api).values())
        ),
        what="4 pods",
    )
    api.patch("StatefulSet", "db", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: set(pods(api)) == {"db-0"}, what="scale down to db-0")
    deleted = deletion_order(api)
    assert deleted == ["db-3", "db-2", "db-1"]


def test_parallel_creates_all_without_waiting(api: Registry, ctl: StatefulSetController) -> None:
    # no kubelet: nothing ever becomes Ready, yet Parallel makes every pod
    api.create(headless())
    api.create(sts_manifest(policy="Parallel"))
    wait_for(lambda: set(pods(api)) == {"db-0", "db-1", "db-2"}, what="3 pods in parallel")


def test_ordered_ready_waits_without_ready_pods(api: Registry, ctl: StatefulSetController) -> None:
    api.create(headless())
    api.create(sts_manifest())
    wait_for(lambda: "db-0" in pods(api), what="db-0")
    for _ in range(20):
        ctl.process_next(timeout=0.01)
    assert set(pods(api)) == {"db-0"}


def test_rolling_update_goes_in_reverse_order(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest())
    wait_for(lambda: (api.get("StatefulSet", "db", "default").get("status") or {}).get("readyReplicas") == 3)
    old_rev = api.get("StatefulSet", "db", "default")["status"]["updateRevision"]
    api.patch(
        "StatefulSet",
        "db",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
    )

    def done() -> bool:
        st = api.get("StatefulSet", "db", "default").get("status") or {}
        return (
            st.get("currentRevision") == st.get("updateRevision") != old_rev and st.get("readyReplicas") == 3
        )

    wait_for(
        done, timeout=15, what="update done", detail=lambda: api.get("StatefulSet", "db", "default")["status"]
    )
    deleted = deletion_order(api)
    assert deleted == ["db-2", "db-1", "db-0"]
    assert {p["spec"]["containers"][0]["image"] for p in pods(api).values()} == {"busybox:2"}
    revisions, _ = api.list("ControllerRevision", "default")
    assert sorted(r["revision"] for r in revisions) == [1, 2]


def test_partition_keeps_lower_ordinals(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest(strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))
    wait_for(lambda: (api.get("StatefulSet", "db", "default").get("status") or {}).get("readyReplicas") == 3)
    api.patch(
        "StatefulSet",
        "db",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
    )
    wait_for(
        lambda: (
            api.get("StatefulSet", "db", "default")["status"].get("updatedReplicas") == 1
            and api.get("StatefulSet", "db", "default")["status"].get("readyReplicas") == 3
        ),
        timeout=15,
    )
    images = {n: p["spec"]["containers"][0]["image"] for n, p in pods(api).items()}
    assert images == {"db-0": "busybox", "db-1": "busybox", "db-2": "busybox:2"}
    st = api.get("StatefulSet", "db", "default")["status"]
    assert st["currentRevision"] != st["updateRevision"] and st["currentReplicas"] == 2
    # a deleted pod below the partition comes back at the current revision
    api.delete("Pod", "db-0", "default")
    wait_for(
        lambda: (
            "db-0" in pods(api)
            and pods(api)["db-0"]["metadata"]["labels"][REVISION_LABEL] == st["currentRevision"]
        ),
        what="db-0 back at the current revision",
    )
    assert pods(api)["db-0"]["spec"]["containers"][0]["image"] == "busybox"


def test_on_delete_updates_only_deleted_pods(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest(strategy={"type": "OnDelete"}))
    wait_for(lambda: (api.get("StatefulSet", "db", "default").get("status") or {}).get("readyReplicas") == 3)
    api.patch(
        "StatefulSet",
        "db",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}},
    )
    wait_for(lambda: api.get("StatefulSet", "db", "default")["status"].get("observedGeneration") == 2)
    for _ in range(20):
        ctl.process_next(timeout=0.01)
    assert {p["spec"]["containers"][0]["image"] for p in pods(api).values()} == {"busybox"}
    api.delete("Pod", "db-1", "default")
    wait_for(
        lambda: "db-1" in pods(api) and pods(api)["db-1"]["spec"]["containers"][0]["image"] == "busybox:2"
    )


def test_claims_are_made_per_pod_and_outlive_scale_down(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest(replicas=2, claims=True))
    wait_for(lambda: len(pods(api)) == 2, what="2 pods")
    claims, _ = api.list("PersistentVolumeClaim", "default")
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert claims[0]["metadata"]["labels"] == {"app": "db"}
    assert pods(api)["db-1"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-db-1"
    api.patch("StatefulSet", "db", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: set(pods(api)) == {"db-0"})
    claims, _ = api.list("PersistentVolumeClaim", "default")
    assert len(claims) == 2  # Retain


def test_missing_service_is_a_warning_event_not_a_crash(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(sts_manifest(name="web", replicas=1))
    wait_for(lambda: "web-0" in pods(api, "web"), what="web-0 starts anyway")

    def warning() -> list[Obj]:
        events, _ = api.list("Event", "default")
        return [e for e in events if e.get("reason") == "FailedServiceLookup"]

    found = wait_for(warning, what="FailedServiceLookup event")
    assert isinstance(found, list) and found[0]["type"] == "Warning"
    assert 'service "web" not found' in found[0]["message"]
    assert found[0]["involvedObject"]["kind"] == "StatefulSet"


def test_finished_pod_is_replaced(api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet) -> None:
    api.create(headless())
    api.create(sts_manifest(replicas=1))
    wait_for(lambda: (pods(api).get("db-0", {}).get("status") or {}).get("phase") == "Running")
    kubelet.paused.set()
    pod = pods(api)["db-0"]
    uid = pod["metadata"]["uid"]
    api.update_status({**pod, "status": {**pod["status"], "phase": "Failed"}})
    # the fake kubelet stays paused (it would turn the Failed pod Running again): the controller
    # alone deletes the failed pod and makes a new one
    wait_for(
        lambda: (p := pods(api).get("db-0")) is not None and p["metadata"]["uid"] != uid, what="db-0 replaced"
    )
    kubelet.paused.clear()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"podManagementPolicy": "Random"}, "spec.podManagementPolicy"),
        ({"replicas": -1}, "spec.replicas"),
        (
            {"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}},
            "spec.updateStrategy.rollingUpdate",
        ),
        (
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}},
            "spec.updateStrategy.rollingUpdate.partition",
        ),
        (
            {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}},
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
        ),
        (
            {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Sometimes"}},
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
        ),
        ({"selector": {"matchLabels": {"app": "other"}}}, "spec.template.metadata.labels"),
        ({"serviceName": "Not_A_Name"}, "spec.serviceName"),
        (
            {
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
                ]
            },
            "spec.volumeClaimTemplates[0].spec.resources",
        ),
        (
            {
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "volumeMode": "Block",
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ]
            },
            "spec.volumeClaimTemplates[0].spec.volumeMode",
        ),
    ],
)
def test_bad_statefulsets_are_refused_with_field_errors(
    api: Registry, patch: dict[str, object], field: str
) -> None:
    sts = sts_manifest()
    sts["spec"].update(patch)
    with pytest.raises(Invalid) as info:
        api.create(sts)
    assert field in str(info.value)
    with pytest.raises(NotFound):
        api.get("StatefulSet", "db", "default")


def test_volume_claim_template_name_may_be_mounted(api: Registry) -> None:
    api.create(sts_manifest(claims=True))  # the mount names a claim template, not a pod volume
    bad = sts_manifest(name="x", claims=False)
    bad["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/d"}]
    with pytest.raises(Invalid):
        api.create(bad)


def test_only_mutable_fields_may_change(api: Registry) -> None:
    api.create(sts_manifest())
    with pytest.raises(Invalid) as info:
        api.patch("StatefulSet", "db", "default", {"spec": {"serviceName": "other"}})
    assert "updates to statefulset spec" in str(info.value)
    api.patch("StatefulSet", "db", "default", {"spec": {"replicas": 5}})


def test_orphaned_pods_are_adopted_not_duplicated(
    api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    api.create(sts_manifest(replicas=2))
    wait_for(lambda: (api.get("StatefulSet", "db", "default").get("status") or {}).get("readyReplicas") == 2)
    uids = {n: p["metadata"]["uid"] for n, p in pods(api).items()}
    api.delete("StatefulSet", "db", "default", propagation="Orphan")
    wait_for(
        lambda: all(not p["metadata"].get("ownerReferences") for p in pods(api).values()), what="orphans"
    )
    api.create(sts_manifest(replicas=2))
    wait_for(lambda: all(p["metadata"].get("ownerReferences") for p in pods(api).values()), what="adopted")
    assert {n: p["metadata"]["uid"] for n, p in pods(api).items()} == uids


@pytest.fixture
def gc(api: Registry, factory: InformerFactory) -> Iterator[GarbageCollector]:
    collector = GarbageCollector(api, factory)
    factory.start_all()
    assert factory.wait_all_synced(5)
    collector.start()
    yield collector
    collector.stop()


def claim_names(api: Registry) -> list[str]:
    return sorted(c["metadata"]["name"] for c in api.list("PersistentVolumeClaim", "default")[0])


def test_retention_when_scaled_delete_removes_the_claims_of_removed_pods(
    api: Registry, ctl: StatefulSetController, gc: GarbageCollector, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    sts = sts_manifest(replicas=3, claims=True)
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenScaled": "Delete", "whenDeleted": "Retain"}
    api.create(sts)
    wait_for(lambda: (api.get("StatefulSet", "db", "default").get("status") or {}).get("readyReplicas") == 3)
    assert claim_names(api) == ["data-db-0", "data-db-1", "data-db-2"]
    api.patch("StatefulSet", "db", "default", {"spec": {"replicas": 1}})
    wait_for(lambda: claim_names(api) == ["data-db-0"], what="claims of db-1, db-2 deleted")
    assert set(pods(api)) == {"db-0"}
    assert not api.get("PersistentVolumeClaim", "data-db-0", "default")["metadata"].get("ownerReferences")
    api.delete("StatefulSet", "db", "default")  # whenDeleted Retain: db-0's claim stays
    wait_for(lambda: not pods(api), what="pods gone")
    assert claim_names(api) == ["data-db-0"]


def test_retention_when_deleted_delete_removes_every_claim_with_the_set(
    api: Registry, ctl: StatefulSetController, gc: GarbageCollector, kubelet: FakeKubelet
) -> None:
    api.create(headless())
    sts = sts_manifest(replicas=2, claims=True)
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    api.create(sts)
    wait_for(
        lambda: (
            all(c["metadata"].get("ownerReferences") for c in api.list("PersistentVolumeClaim", "default")[0])
            and len(claim_names(api)) == 2
        ),
        what="claims owned by the set",
    )
    api.patch("StatefulSet", "db", "default", {"spec": {"replicas": 1}})  # whenScaled Retain
    wait_for(lambda: set(pods(api)) == {"db-0"})
    assert claim_names(api) == ["data-db-0", "data-db-1"]
    api.delete("StatefulSet", "db", "default")
    wait_for(lambda: not claim_names(api), what="claims deleted with the set")


def test_headless_service_endpoints_carry_the_pods_hostnames() -> None:
    from nbkube.controlplane.controllers.endpoints import compute_subsets

    sts = sts_manifest()
    sts["metadata"]["uid"] = "u1"
    ready = [{"type": "Ready", "status": "True"}]
    members = []
    for i in range(2):
        pod = pod_for_ordinal(sts, sts["spec"]["template"], "r", i)
        pod["metadata"]["uid"] = f"p{i}"
        pod["status"] = {"phase": "Running", "podIP": f"10.244.1.{i + 2}", "conditions": ready}
        members.append(pod)
    other = {"metadata": {"name": "x", "namespace": "default"}, "spec": {"hostname": "x", "subdomain": "elsewhere"},
             "status": {"phase": "Running", "podIP": "10.244.1.9", "conditions": ready}}  # fmt: skip
    subsets = compute_subsets(headless(), [*members, other])
    hosts = {a["targetRef"]["name"]: a.get("hostname") for a in subsets[0]["addresses"]}
    assert hosts == {"db-0": "db-0", "db-1": "db-1", "x": None}


def test_ordinals_start_numbers_the_pods(api: Registry, ctl: StatefulSetController, kubelet: FakeKubelet) -> None:
    api.create(headless())
    sts = sts_manifest(replicas=2)
    sts["spec"]["ordinals"] = {"start": 5}
    api.create(sts)
    wait_for(lambda: set(pods(api)) == {"db-5", "db-6"}, what="db-5 and db-6")
    api.patch("StatefulSet", "db", "default", {"spec": {"ordinals": {"start": 6}}})
    wait_for(lambda: set(pods(api)) == {"db-6", "db-7"}, what="db-5 condemned, db-7 made")
