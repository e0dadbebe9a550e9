"""validate() and validate_update(): per-kind rules, with the exact paths and messages users see."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nbkube.api.defaults import apply_defaults
from nbkube.api.validation import validate, validate_update

Obj = dict[str, Any]


def errors(obj: Any) -> list[str]:
    return [str(e) for e in validate(obj)]


def pod(**spec: Any) -> Obj:
    base: Obj = {"containers": [{"name": "app", "image": "busybox"}]}
    base.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": base,
    }


def container(**fields: Any) -> Obj:
    c: Obj = {"name": "app", "image": "busybox"}
    c.update(fields)
    return c


def rc(selector: Any = None, labels: Any = None, **spec: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "r"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "web"} if selector is None else selector,
            "template": {
                "metadata": {"labels": {"app": "web"} if labels is None else labels},
                "spec": {"containers": [container()]},
            },
        },
    }
    obj["spec"].update(spec)
    return obj


def deployment(selector: Any = None, **spec: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}} if selector is None else selector,
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "fe"}},
                "spec": {"containers": [container()]},
            },
        },
    }
    obj["spec"].update(spec)
    return obj


def service(**spec: Any) -> Obj:
    base: Obj = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": base}


# --- top level and metadata ----------------------------------------------------------------------


def test_valid_objects_have_no_errors() -> None:
    for obj in (pod(), rc(), deployment(), service()):
        assert errors(obj) == []
        assert errors(apply_defaults(copy.deepcopy(obj))) == []


def test_top_level_shape() -> None:
    assert errors([1]) == ["must be a mapping (an object with apiVersion, kind and metadata), got list [1]"]
    assert errors({"kind": "Pod"}) == ["apiVersion: required"]
    assert errors({"apiVersion": "v1", "kind": "Gadget"}) == [
        'kind: no matches for kind "Gadget" in version "v1"'
    ]
    assert errors({"apiVersion": "v2", "kind": "Pod"})[0].startswith(
        'apiVersion: no matches for kind "Pod" in version "v2"'
    )
    obj = pod()
    del obj["metadata"]
    assert errors(obj) == ["metadata: required"]
    obj["metadata"] = "p"
    assert errors(obj) == ['metadata: must be a mapping, got string "p"']
    obj = pod()
    obj["status"] = []
    assert errors(obj) == ["status: must be a mapping, got list []"]


def test_metadata_rules() -> None:
    obj = pod()
    obj["metadata"] = {"generateName": "web-"}
    assert errors(obj) == []
    obj["metadata"] = {"generateName": "Web-"}
    assert errors(obj)[0].startswith('metadata.generateName: Invalid value: "Web-"')
    obj["metadata"] = {}
    assert errors(obj) == ["metadata.name: required (or set metadata.generateName)"]
    obj["metadata"] = {"name": 5}
    assert errors(obj)[0] == "metadata.name: must be a string, got integer 5"
    obj["metadata"] = {"name": "p", "annotations": {"a": 1}, "labels": ["x"]}
    assert errors(obj) == [
        'metadata.labels: must be a mapping, got list ["x"]',
        "metadata.annotations[a]: must be a string, got integer 1",
    ]
    obj["metadata"] = {"name": "p", "labels": {"a/b/c": "x", "example.com/ok": "", "k": "v" * 64}}
    msgs = errors(obj)
    assert msgs[0].startswith('metadata.labels: Invalid value: "a/b/c": a qualified name must consist of')
    assert msgs[1] == f'metadata.labels[k]: Invalid value: "{"v" * 64}": must be no more than 63 characters'
    assert len(msgs) == 2


def test_namespace_on_cluster_scoped_kind_is_forbidden() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "namespace": "x"}}
    assert errors(ns) == ["metadata.namespace: Forbidden: not allowed on this type (it is cluster-scoped)"]


def test_names_per_kind() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    assert errors(ns)[0].startswith('metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label')
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example.com"}}
    assert errors(node) == []
    svc = service()
    svc["metadata"]["name"] = "s.1"
    assert errors(svc)[0].startswith('metadata.name: Invalid value: "s.1": a DNS-1035 label')
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.17a3"},
        "involvedObject": {"kind": "Pod"},
    }
    assert errors(event) == []


# --- pods ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": []}, ["spec.containers: required"]),
        ({"containers": None}, ["spec.containers: required"]),
        ({"containers": "app"}, ['spec.containers: must be a list, got string "app"']),
        ({"containers": ["app"]}, ['spec.containers[0]: must be a mapping, got string "app"']),
        ({"containers": [{"image": "x"}]}, ["spec.containers[0].name: required"]),
        (
            {"containers": [container(), container()]},
            ['spec.containers[1].name: Duplicate value: "app"'],
        ),
        (
            {"containers": [container(name="App")]},
            [
                'spec.containers[0].name: Invalid value: "App": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
            ],
        ),
        (
            {"containers": [container(image=" nginx")]},
            [
                'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace'
            ],
        ),
        (
            {"containers": [container(ports=[{"containerPort": 80, "protocol": "HTTP"}])]},
            [
                'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "TCP", "UDP", "SCTP"'
            ],
        ),
        (
            {
                "containers": [
                    container(
                        ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]
                    )
                ]
            },
            ['spec.containers[0].ports[1].name: Duplicate value: "http"'],
        ),
        (
            {"containers": [container(ports=[{"name": "http"}])]},
            ["spec.containers[0].ports[0].containerPort: required"],
        ),
        (
            {"restartPolicy": "Sometimes"},
            [
                'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
            ],
        ),
        (
            {"containers": [container(command="sleep 1")]},
            ['spec.containers[0].command: must be a list, got string "sleep 1"'],
        ),
        (
            {"containers": [container(env=[{"name": "1X", "value": "a"}])]},
            [
                "spec.containers[0].env[0].name: Invalid value: \"1X\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
            ],
        ),
        (
            {"containers": [container(env=[{"name": "X", "value": 1}])]},
            ["spec.containers[0].env[0].value: must be a string (quote numbers and booleans), got integer 1"],
        ),
        (
            {"nodeSelector": {"disk": "s s d"}},
            [
                "spec.nodeSelector[disk]: Invalid value: \"s s d\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')"
            ],
        ),
        (
            {"activeDeadlineSeconds": 0},
            ["spec.activeDeadlineSeconds: Invalid value: 0: must be greater than or equal to 1"],
        ),
    ],
)
def test_pod_spec_rules(spec: Obj, expected: list[str]) -> None:
    assert errors(pod(**spec)) == expected


def test_resources_requests_and_limits() -> None:
    ok = container(
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}
    )
    assert errors(pod(containers=[ok])) == []
    bad = container(resources={"requests": {"cpu": "2", "memory": "64MB"}, "limits": {"cpu": "1"}})
    assert errors(pod(containers=[bad])) == [
        'spec.containers[0].resources.requests[memory]: Invalid value: "64MB": must be a number with an optional suffix '
        "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like 1e3)",
        'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ]
    neg = container(resources={"limits": {"cpu": "-1"}})
    assert errors(pod(containers=[neg])) == [
        'spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0'
    ]


def test_volumes_and_mounts() -> None:
    vols = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}]
    assert errors(pod(volumes=vols, containers=[container(volumeMounts=mounts)])) == []
    bad_vols = [
        {"name": "data", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
        {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
        {"name": "none"},
        {"name": "hp", "hostPath": {}},
    ]
    bad_mounts = [
        {"name": "missing", "mountPath": "/m"},
        {"name": "data", "mountPath": "/m"},
        {"name": "data"},
    ]
    assert errors(pod(volumes=bad_vols, containers=[container(volumeMounts=bad_mounts)])) == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.volumes[2]: Forbidden: may not specify more than 1 volume type (found emptyDir, hostPath)",
        "spec.volumes[3]: must specify a volume type",
        "spec.volumes[4].hostPath.path: required",
        'spec.containers[0].volumeMounts[0].name: Not found: "missing" (no volume of that name in the pod\'s volumes)',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/m": must be unique',
        "spec.containers[0].volumeMounts[2].mountPath: required",
    ]


def test_probes() -> None:
    good = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5}
    assert (
        errors(pod(containers=[container(livenessProbe=good, readinessProbe={"tcpSocket": {"port": 80}})]))
        == []
    )
    bad = container(
        livenessProbe={"periodSeconds": -1},
        readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        startupProbe={"httpGet": {"port": 0}, "successThreshold": 2},
    )
    assert errors(pod(containers=[bad])) == [
        "spec.containers[0].livenessProbe: must specify a handler type (exec, httpGet, tcpSocket or grpc)",
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type (found exec, tcpSocket)",
        "spec.containers[0].startupProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1",
    ]


def test_tolerations() -> None:
    ok = [
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 5,
        },
        {"operator": "Exists"},
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    ]
    assert errors(pod(tolerations=ok)) == []
    bad = [
        {"key": "k", "operator": "Maybe"},
        {"value": "x"},
        {"key": "k", "operator": "Exists", "value": "v"},
        {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
        {"key": "k", "effect": "Never"},
    ]
    assert errors(pod(tolerations=bad)) == [
        'spec.tolerations[0].operator: Unsupported value: "Maybe": supported values: "Exists", "Equal"',
        'spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys"',
        "spec.tolerations[2].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'",
        "spec.tolerations[3].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        'spec.tolerations[4].effect: Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ]


# --- controllers ---------------------------------------------------------------------------------


def test_rc_rules() -> None:
    assert errors(rc(selector={"app": "db"})) == [
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`'
    ]
    assert errors(rc(selector={})) == ["spec.selector: required"]
    assert errors(rc(replicas="five")) == ['spec.replicas: must be an integer, got string "five"']
    assert errors(rc(replicas=1.5)) == ["spec.replicas: must be an integer, got number 1.5"]
    obj = rc()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert errors(obj) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    obj = rc()
    del obj["spec"]["template"]
    assert errors(obj) == ["spec.template: required"]
    # a selector that is a subset of the template labels is fine
    assert errors(rc(labels={"app": "web", "version": "2"})) == []


def test_deployment_and_replicaset_selectors() -> None:
    assert (
        errors(
            deployment(selector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]})
        )
        == []
    )
    assert errors(deployment(selector={"matchLabels": {"app": "db"}})) == [
        'spec.template.metadata.labels: Invalid value: {"app":"web","tier":"fe"}: `selector` does not match template `labels`'
    ]
    assert errors(deployment(selector={})) == [
        "spec.selector: Invalid value: {}: empty selector is invalid for deployment"
    ]
    obj = deployment()
    del obj["spec"]["selector"]
    assert errors(obj) == ["spec.selector: required"]
    assert errors(deployment(selector={"matchExpressions": [{"key": "a", "operator": "Is"}]})) == [
        'spec.selector.matchExpressions[0].operator: Unsupported value: "Is": supported values: "In", "NotIn", "Exists", "DoesNotExist"'
    ]
    rs = deployment()
    rs["kind"] = "ReplicaSet"
    assert errors(rs) == []
    rs["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    assert errors(rs)[0].endswith("`selector` does not match template `labels`")


def test_deployment_strategy() -> None:
    ok = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}}
    assert errors(deployment(strategy=ok)) == []
    assert errors(deployment(strategy={"type": "Canary"})) == [
        'spec.strategy.type: Unsupported value: "Canary": supported values: "Recreate", "RollingUpdate"'
    ]
    assert errors(deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]
    assert errors(deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'
    ]
    assert errors(deployment(strategy={"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "120%"}})) == [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": must be an integer or percentage (e.g. '5%')",
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "120%": must not be greater than 100%',
    ]
    assert errors(deployment(minReadySeconds=10, progressDeadlineSeconds=5, paused="no")) == [
        "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
        'spec.paused: must be a boolean, got string "no"',
    ]


# --- services and networking ------------------------------------------------------------------------


def test_service_rules() -> None:
    assert errors(service(type="NodePort", ports=[{"port": 8000, "targetPort": 80, "nodePort": 30001}])) == []
    assert errors(service(ports=[])) == ["spec.ports: required"]
    assert errors(service(ports=[], clusterIP="None")) == []
    assert errors(service(type="ExternalName", externalName="db.example.com", ports=None)) == []
    assert errors(service(type="Fancy")) == [
        'spec.type: Unsupported value: "Fancy": supported values: "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"'
    ]
    assert errors(service(ports=[{"port": 80, "targetPort": "Web_Port"}, {"port": 70000, "name": "b"}])) == [
        "spec.ports[0].name: required when a service has more than one port",
        'spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ]
    assert errors(service(ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "a"}])) == [
        'spec.ports[1].name: Duplicate value: "a"',
        'spec.ports[1]: Duplicate value: {"port":80,"protocol":"TCP"}',
    ]
    assert errors(service(ports=[{"port": 80, "targetPort": "8080"}])) == [
        'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)'
    ]
    assert errors(service(ports=[{"port": "80"}])) == [
        'spec.ports[0].port: must be an integer, got string "80"'
    ]
    assert errors(service(ports=[{"port": 80, "nodePort": 30001}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert errors(service(type="NodePort", ports=[{"port": 80, "nodePort": 8080}])) == [
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
    ]
    assert errors(service(clusterIP="10.0.0.300")) == [
        'spec.clusterIP: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]
    assert errors(service(selector={"app": 1})) == ["spec.selector[app]: must be a string, got integer 1"]


def test_endpoints() -> None:
    ep: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "s"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "n1"}], "ports": [{"port": 80}]}],
    }
    assert errors(ep) == []
    ep["subsets"][0]["addresses"].append({"ip": "nope"})
    assert errors(ep) == [
        'subsets[0].addresses[1].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]


def test_network_policy() -> None:
    np: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}],
                    "ports": [{"port": 80}],
                }
            ],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        },
    }
    assert errors(np) == []
    np["spec"]["policyTypes"] = ["Ingress", "Both"]
    np["spec"]["ingress"][0]["from"].append({})
    np["spec"]["egress"][0]["to"][0]["ipBlock"]["except"] = ["192.168.0.0/16"]
    np["spec"]["egress"][0]["to"].append({"ipBlock": {"cidr": "10.0.0.0"}, "podSelector": {}})
    assert errors(np) == [
        'spec.policyTypes[1]: Unsupported value: "Both": supported values: "Ingress", "Egress"',
        "spec.ingress[0].from[1]: must specify a peer (podSelector, namespaceSelector or ipBlock)",
        'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`',
        "spec.egress[0].to[1]: Forbidden: may not specify both ipBlock and another peer",
        'spec.egress[0].to[1].ipBlock.cidr: Invalid value: "10.0.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
    ]
    del np["spec"]["podSelector"]
    assert "spec.podSelector: required (use {} to select every pod in the namespace)" in errors(np)


# --- other kinds ------------------------------------------------------------------------------------


def test_node_taints_and_cidr() -> None:
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.1.0/24"},
    }
    assert errors(node) == []
    node["spec"] = {
        "podCIDR": "10.244.1.0",
        "taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b"}],
    }
    assert errors(node) == [
        'spec.podCIDR: Invalid value: "10.244.1.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
        'spec.taints[1]: Duplicate value: {"key":"a","effect":"NoSchedule"}',
        "spec.taints[2].effect: required",
    ]


def test_configmap_and_secret() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"app.conf": "x", "bad/key": "y", "n": 1},
    }
    assert errors(cm) == [
        "data[n]: must be a string, got integer 1",
        "data: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    ]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"pw": "c2VjcmV0", "bad": "not base64!"},
    }
    assert errors(secret) == [
        'data[bad]: Invalid value: "<secret data>": must be valid base64 (put plain text under stringData)'
    ]


def test_quota_limitrange_event_lease() -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "x"}},
    }
    assert errors(quota) == [
        'spec.hard[requests.cpu]: Invalid value: "x": must be a number with an optional suffix '
        "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like 1e3)"
    ]
    lr = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l"},
        "spec": {
            "limits": [
                {"type": "Container", "min": {"cpu": "500m"}, "max": {"cpu": "200m"}},
                {"type": "Pod", "default": {"cpu": 1}},
            ]
        },
    }
    assert errors(lr) == [
        'spec.limits[0].max[cpu]: Invalid value: "200m": min value 500m is greater than max value 200m',
        "spec.limits[1].default: Forbidden: may not be set when `type` is 'Pod' (only for Container)",
    ]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "involvedObject": {},
        "type": "Bad",
        "count": -1,
    }
    assert errors(event) == [
        'type: Unsupported value: "Bad": supported values: "Normal", "Warning"',
        "count: Invalid value: -1: must be greater than or equal to 0",
    ]
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "n1"},
        "spec": {"leaseDurationSeconds": 0},
    }
    assert errors(lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than or equal to 1"
    ]


# --- updates --------------------------------------------------------------------------------------


def update_errors(new: Obj, old: Obj) -> list[str]:
    return [str(e) for e in validate_update(new, old)]


def test_replicaset_and_deployment_selectors_are_immutable() -> None:
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    assert update_errors(new, old) == []
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "fe"}}
    assert update_errors(new, old) == [
        'spec.selector: Invalid value: {"matchLabels":{"app":"web","tier":"fe"}}: field is immutable'
    ]


def test_service_cluster_ip_is_immutable_once_set() -> None:
    old = service(clusterIP="10.96.0.10")
    new = copy.deepcopy(old)
    assert update_errors(new, old) == []
    new["spec"]["clusterIP"] = "10.96.0.11"
    assert update_errors(new, old) == [
        'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable (was 10.96.0.10)'
    ]
    assert update_errors(service(clusterIP="10.96.0.11"), service()) == []


def test_pod_spec_is_immutable_except_image_deadline_tolerations_and_binding() -> None:
    old = apply_defaults(pod(tolerations=[{"key": "a", "operator": "Exists"}]))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    new["spec"]["activeDeadlineSeconds"] = 60
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["spec"]["nodeName"] = "n1"
    new["metadata"]["labels"] = {"x": "y"}
    before_new, before_old = copy.deepcopy(new), copy.deepcopy(old)
    assert update_errors(new, old) == []
    assert (new, old) == (before_new, before_old)  # the check works on copies
    rebind = copy.deepcopy(new)
    rebind["spec"]["nodeName"] = "n2"
    assert update_errors(rebind, new) == [
        'spec.nodeName: Invalid value: "n2": may not be changed once set (bound to n1)'
    ]
    changed = copy.deepcopy(old)
    changed["spec"]["containers"][0]["command"] = ["sh"]
    changed["spec"]["restartPolicy"] = "Never"
    changed["spec"]["tolerations"] = []
    msgs = update_errors(changed, old)
    assert (
        msgs[0]
        == 'spec.tolerations: Forbidden: existing toleration {"key":"a","operator":"Exists"} may not be removed or changed'
    )
    assert msgs[1].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    )
    assert msgs[1].endswith("changed: spec.containers, spec.restartPolicy")


def test_update_may_not_change_identity() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "q"
    assert update_errors(new, old) == ['metadata.name: Invalid value: "q": field is immutable']


def test_immutable_configmap() -> None:
    old: Obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
        "immutable": True,
    }
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert update_errors(new, old) == ["data: Forbidden: field is immutable when `immutable` is set"]


# --- downward API field paths ----------------------------------------------------------------------


def _env_from_field(path: str) -> Obj:
    return pod(containers=[container(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}])])


@pytest.mark.parametrize(
    "path",
    [
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.labels['app']",
        "metadata.annotations['example.com/x']",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ],
)
def test_supported_env_field_paths(path: str) -> None:
    assert errors(_env_from_field(path)) == []


@pytest.mark.parametrize("path", ["spec.nope", "metadata.labels", "status.phase", "metadata.labels['-x']"])
def test_unsupported_env_field_paths(path: str) -> None:
    errs = errors(_env_from_field(path))
    assert len(errs) == 1
    assert errs[0].startswith("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: ")


def test_downward_volume_takes_whole_label_map_but_not_node_name() -> None:
    def volume(path: str) -> Obj:
        items = [{"path": "f", "fieldRef": {"fieldPath": path}}]
        return pod(volumes=[{"name": "info", "downwardAPI": {"items": items}}])

    assert errors(volume("metadata.labels")) == []
    assert errors(volume("spec.nodeName")) == [
        'spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: "spec.nodeName": '
        'supported values: "metadata.annotations", "metadata.annotations[\'<KEY>\']", "metadata.labels", '
        '"metadata.labels[\'<KEY>\']", "metadata.name", "metadata.namespace", "metadata.uid"'
    ]
def test_security_contexts() -> None:
    assert (
        errors(
            pod(
                securityContext={
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "runAsNonRoot": True,
                    "fsGroup": 2000,
                    "supplementalGroups": [3000],
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                },
                containers=[
                    container(
                        securityContext={
                            "runAsUser": 65534,
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                        }
                    )
                ],
            )
        )
        == []
    )
    assert errors(
        pod(
            securityContext={
                "runAsUser": -1,
                "runAsGroup": 2147483648,
                "runAsNonRoot": "yes",
                "supplementalGroups": ["x"],
                "seccompProfile": {"type": "Strict"},
                "sysctls": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}],
            },
            containers=[
                container(
                    securityContext={
                        "runAsUser": "root",
                        "privileged": True,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": 1,
                        "procMount": "Masked",
                        "capabilities": {"add": ["CAP_SYS_ADMIN", "FLY"], "drop": "ALL"},
                        "seccompProfile": {"type": "Localhost"},
                    }
                )
            ],
        )
    ) == [
        'spec.containers[0].securityContext.runAsUser: must be an integer, got string "root"',
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: required",
        "spec.containers[0].securityContext.readOnlyRootFilesystem: must be a boolean, got integer 1",
        'spec.containers[0].securityContext.procMount: Unsupported value: "Masked": supported values: "Default", "Unmasked"',
        "spec.containers[0].securityContext.allowPrivilegeEscalation: Invalid value: false: "
        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        'spec.containers[0].securityContext.capabilities.add[0]: Invalid value: "CAP_SYS_ADMIN": '
        'capability names are written without the CAP_ prefix ("SYS_ADMIN")',
        'spec.containers[0].securityContext.capabilities.add[1]: Invalid value: "FLY": '
        "must be a Linux capability name (such as NET_BIND_SERVICE) or ALL",
        'spec.containers[0].securityContext.capabilities.drop: must be a list, got string "ALL"',
        "spec.securityContext.runAsUser: Invalid value: -1: must be greater than or equal to 0",
        "spec.securityContext.runAsGroup: Invalid value: 2147483648: must be less than or equal to 2147483647",
        'spec.securityContext.runAsNonRoot: must be a boolean, got string "yes"',
        'spec.securityContext.seccompProfile.type: Unsupported value: "Strict": '
        'supported values: "RuntimeDefault", "Localhost", "Unconfined"',
        'spec.securityContext.supplementalGroups[0]: Invalid value: "x": must be an integer between 0 and 2147483647',
        'spec.securityContext.sysctls[1].name: Duplicate value: "a"',
    ]


def test_namespace_pod_security_labels() -> None:
    ns: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    ns["metadata"]["labels"] = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.30",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
        "pod-security.kubernetes.io/other": "anything",
    }
    assert errors(ns) == []
    ns["metadata"]["labels"] = {
        "pod-security.kubernetes.io/audit": "Baseline",
        "pod-security.kubernetes.io/warn-version": "v2.0",
    }
    assert errors(ns) == [
        'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "Baseline": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v2.0": must be "latest" or "v1.x"',
    ]


def test_sysctls_of_a_shared_host_namespace_are_refused() -> None:
    sysctls = [
        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
        {"name": "kernel.shm_rmid_forced", "value": "1"},
    ]
    assert errors(pod(hostNetwork=True, hostIPC=True, securityContext={"sysctls": sysctls})) == [
        'spec.securityContext.sysctls[0].name: Invalid value: "net.ipv4.tcp_syncookies": '
        "may not be specified when 'hostNetwork' is true",
        'spec.securityContext.sysctls[1].name: Invalid value: "kernel.shm_rmid_forced": '
        "may not be specified when 'hostIPC' is true",
    ]
    assert errors(pod(securityContext={"sysctls": sysctls})) == []
