"""The field names of each object shape, for catching typos in manifests (`replica: 5`).

kubectl asks the API server for strict decoding by default, so `spec.replica` or `targetport` is an
error rather than silently ignored (and then defaulted). `unknown_fields(obj)` gives the same check;
`serialization.load_manifests` calls it on user files. The registry does not: components may write
fields this table does not list, and `status` is never checked. Shapes not listed here (affinity,
securityContext, volume source bodies, ...) are open.

nbkube/api/schemas.py gives every field here a type and a description for the OpenAPI documents;
tests/api/test_schemas.py fails when a field is added to one table and not the other.
"""

from __future__ import annotations

import difflib
from typing import Any

from nbkube.api import fieldnames_storage
from nbkube.api.fieldcheck import join
from nbkube.errors import FieldError

__all__ = ["unknown_fields"]


def _f(text: str) -> frozenset[str]:
    return frozenset(text.split())


_META = _f(
    "name generateName namespace uid resourceVersion generation creationTimestamp deletionTimestamp "
    "deletionGracePeriodSeconds labels annotations ownerReferences finalizers managedFields selfLink"
)
_VOLUME_SOURCES = (
    "hostPath emptyDir gcePersistentDisk awsElasticBlockStore gitRepo secret nfs iscsi glusterfs "
    "persistentVolumeClaim rbd flexVolume cinder cephfs flocker downwardAPI fc azureFile configMap "
    "vsphereVolume quobyte azureDisk photonPersistentDisk projected portworxVolume scaleIO storageos csi "
    "ephemeral image"
)

# shape -> its field names
FIELDS: dict[str, frozenset[str]] = {
    "ObjectMeta": _META,
    "PodSpec": _f(
        "volumes initContainers containers ephemeralContainers restartPolicy terminationGracePeriodSeconds "
        "activeDeadlineSeconds dnsPolicy nodeSelector serviceAccountName serviceAccount "
        "automountServiceAccountToken nodeName hostNetwork hostPID hostIPC shareProcessNamespace "
        "securityContext imagePullSecrets hostname subdomain affinity schedulerName tolerations hostAliases "
        "priorityClassName priority dnsConfig readinessGates runtimeClassName enableServiceLinks "
        "preemptionPolicy overhead topologySpreadConstraints setHostnameAsFQDN os hostUsers schedulingGates "
        "resourceClaims resources"
    ),
    "Container": _f(
        "name image command args workingDir ports envFrom env resources resizePolicy restartPolicy "
        "volumeMounts volumeDevices livenessProbe readinessProbe startupProbe lifecycle "
        "terminationMessagePath terminationMessagePolicy imagePullPolicy securityContext stdin stdinOnce tty"
    ),
    "ContainerPort": _f("name hostPort containerPort protocol hostIP"),
    "EnvVar": _f("name value valueFrom"),
    "EnvFromSource": _f("prefix configMapRef secretRef"),
    "VolumeMount": _f("name readOnly recursiveReadOnly mountPath subPath mountPropagation subPathExpr"),
    "Resources": _f("limits requests claims"),
    "Probe": _f(
        "exec httpGet tcpSocket grpc initialDelaySeconds timeoutSeconds periodSeconds successThreshold "
        "failureThreshold terminationGracePeriodSeconds"
    ),
    "HTTPGet": _f("path port host scheme httpHeaders"),
    "Toleration": _f("key operator value effect tolerationSeconds"),
    "Volume": _f("name " + _VOLUME_SOURCES),
    "PodTemplate": _f("metadata spec"),
    "RCSpec": _f("replicas minReadySeconds selector template"),
    "RSSpec": _f("replicas minReadySeconds selector template"),
    "DeploymentSpec": _f(
        "replicas selector template strategy minReadySeconds revisionHistoryLimit paused progressDeadlineSeconds"
    ),
    "Strategy": _f("type rollingUpdate"),
    "DaemonSetSpec": _f("selector template updateStrategy minReadySeconds revisionHistoryLimit"),
    "DaemonSetUpdateStrategy": _f("type rollingUpdate"),
    "RollingUpdateDaemonSet": _f("maxUnavailable maxSurge"),
    "PDBSpec": _f("minAvailable maxUnavailable selector unhealthyPodEvictionPolicy"),
    "JobSpec": _f(
        "parallelism completions activeDeadlineSeconds podFailurePolicy successPolicy backoffLimit "
        "backoffLimitPerIndex maxFailedIndexes selector manualSelector template ttlSecondsAfterFinished "
        "completionMode suspend podReplacementPolicy managedBy"
    ),
    "CronJobSpec": _f(
        "schedule timeZone startingDeadlineSeconds concurrencyPolicy suspend jobTemplate "
        "successfulJobsHistoryLimit failedJobsHistoryLimit"
    ),
    "JobTemplate": _f("metadata spec"),
    "RollingUpdate": _f("maxUnavailable maxSurge"),
    "LabelSelector": _f("matchLabels matchExpressions"),
    "Requirement": _f("key operator values"),
    "ServiceSpec": _f(
        "ports selector clusterIP clusterIPs type externalIPs sessionAffinity loadBalancerIP "
        "loadBalancerSourceRanges externalName externalTrafficPolicy healthCheckNodePort "
        "publishNotReadyAddresses sessionAffinityConfig ipFamilies ipFamilyPolicy "
        "allocateLoadBalancerNodePorts loadBalancerClass internalTrafficPolicy trafficDistribution"
    ),
    "ServicePort": _f("name protocol appProtocol port targetPort nodePort"),
    "Subset": _f("addresses notReadyAddresses ports"),
    "Address": _f("ip hostname nodeName targetRef"),
    "EndpointPort": _f("name port protocol appProtocol"),
    "NamespaceSpec": _f("finalizers"),
    "NodeSpec": _f("podCIDR podCIDRs providerID unschedulable taints configSource externalID"),
    "Taint": _f("key value effect timeAdded"),
    "QuotaSpec": _f("hard scopes scopeSelector"),
    "LimitRangeSpec": _f("limits"),
    "LimitRangeItem": _f("type max min default defaultRequest maxLimitRequestRatio"),
    "NetworkPolicySpec": _f("podSelector ingress egress policyTypes"),
    "IngressRule": _f("ports from"),
    "EgressRule": _f("ports to"),
    "Peer": _f("podSelector namespaceSelector ipBlock"),
    "IPBlock": _f("cidr except"),
    "NetworkPolicyPort": _f("protocol port endPort"),
    "Endpoint": _f("addresses conditions hostname targetRef nodeName zone hints deprecatedTopology"),
    "EndpointConditions": _f("ready serving terminating"),
    "HPASpec": _f("scaleTargetRef minReplicas maxReplicas metrics behavior"),
    "HPATargetRef": _f("kind name apiVersion"),
    "HPAMetric": _f("type resource pods object external containerResource"),
    "HPAResourceMetric": _f("name target"),
    "HPAMetricTarget": _f("type averageUtilization averageValue value"),
    "HPABehavior": _f("scaleUp scaleDown"),
    "HPAScalingRules": _f("stabilizationWindowSeconds selectPolicy policies"),
    "HPAScalingPolicy": _f("type value periodSeconds"),
    "LeaseSpec": _f(
        "holderIdentity leaseDurationSeconds acquireTime renewTime leaseTransitions strategy preferredHolder"
    ),
    "EventSource": _f("component host"),
    "PolicyRule": _f("verbs apiGroups resources resourceNames nonResourceURLs"),
    "Subject": _f("kind apiGroup name namespace"),
    "RoleRef": _f("apiGroup kind name"),
    "ObjectReference": _f("kind namespace name uid apiVersion resourceVersion fieldPath"),
    "LocalObjectReference": _f("name"),
    **fieldnames_storage.FIELDS,
}

_TOP = "apiVersion kind metadata "
TOP_LEVEL: dict[str, frozenset[str]] = {
    "Pod": _f(_TOP + "spec status"),
    "Service": _f(_TOP + "spec status"),
    "ReplicationController": _f(_TOP + "spec status"),
    "ReplicaSet": _f(_TOP + "spec status"),
    "Deployment": _f(_TOP + "spec status"),
    "DaemonSet": _f(_TOP + "spec status"),
    "ControllerRevision": _f(_TOP + "data revision"),
    "PodDisruptionBudget": _f(_TOP + "spec status"),
    "Job": _f(_TOP + "spec status"),
    "CronJob": _f(_TOP + "spec status"),
    "HorizontalPodAutoscaler": _f(_TOP + "spec status"),
    "Namespace": _f(_TOP + "spec status"),
    "Node": _f(_TOP + "spec status"),
    "Endpoints": _f(_TOP + "subsets"),
    "ConfigMap": _f(_TOP + "data binaryData immutable"),
    "Secret": _f(_TOP + "data stringData type immutable"),
    "ServiceAccount": _f(_TOP + "secrets imagePullSecrets automountServiceAccountToken"),
    "ResourceQuota": _f(_TOP + "spec status"),
    "LimitRange": _f(_TOP + "spec"),
    "NetworkPolicy": _f(_TOP + "spec status"),
    "Event": _f(
        _TOP + "involvedObject reason message source firstTimestamp lastTimestamp count type eventTime "
        "series action related reportingComponent reportingInstance"
    ),
    "Lease": _f(_TOP + "spec"),
    "EndpointSlice": _f(_TOP + "addressType endpoints ports"),
    "Role": _f(_TOP + "rules"),
    "ClusterRole": _f(_TOP + "rules aggregationRule"),
    "RoleBinding": _f(_TOP + "subjects roleRef"),
    "ClusterRoleBinding": _f(_TOP + "subjects roleRef"),
    **fieldnames_storage.TOP_LEVEL,
}

# top-level fields other than spec with a shape of their own: (kind, field) -> shape
_TOP_SHAPES: dict[tuple[str, str], str] = {
    ("Role", "rules"): "PolicyRule",
    ("ClusterRole", "rules"): "PolicyRule",
    ("RoleBinding", "subjects"): "Subject",
    ("RoleBinding", "roleRef"): "RoleRef",
    ("ClusterRoleBinding", "subjects"): "Subject",
    ("ClusterRoleBinding", "roleRef"): "RoleRef",
    ("ServiceAccount", "secrets"): "ObjectReference",
    ("EndpointSlice", "endpoints"): "Endpoint",
    ("EndpointSlice", "ports"): "EndpointPort",
    ("ServiceAccount", "imagePullSecrets"): "LocalObjectReference",
}

# (shape, field) -> shape of the field's value (or of each item when the value is a list)
CHILDREN: dict[tuple[str, str], str] = {
    ("PodSpec", "containers"): "Container",
    ("PodSpec", "initContainers"): "Container",
    ("PodSpec", "volumes"): "Volume",
    ("PodSpec", "tolerations"): "Toleration",
    ("Container", "ports"): "ContainerPort",
    ("Container", "env"): "EnvVar",
    ("Container", "envFrom"): "EnvFromSource",
    ("Container", "volumeMounts"): "VolumeMount",
    ("Container", "resources"): "Resources",
    ("Container", "livenessProbe"): "Probe",
    ("Container", "readinessProbe"): "Probe",
    ("Container", "startupProbe"): "Probe",
    ("Probe", "httpGet"): "HTTPGet",
    ("PodTemplate", "metadata"): "ObjectMeta",
    ("PodTemplate", "spec"): "PodSpec",
    ("RCSpec", "template"): "PodTemplate",
    ("RSSpec", "template"): "PodTemplate",
    ("RSSpec", "selector"): "LabelSelector",
    ("DeploymentSpec", "template"): "PodTemplate",
    ("DeploymentSpec", "selector"): "LabelSelector",
    ("DeploymentSpec", "strategy"): "Strategy",
    ("Strategy", "rollingUpdate"): "RollingUpdate",
    ("DaemonSetSpec", "template"): "PodTemplate",
    ("DaemonSetSpec", "selector"): "LabelSelector",
    ("DaemonSetSpec", "updateStrategy"): "DaemonSetUpdateStrategy",
    ("DaemonSetUpdateStrategy", "rollingUpdate"): "RollingUpdateDaemonSet",
    ("PDBSpec", "selector"): "LabelSelector",
    ("JobSpec", "template"): "PodTemplate",
    ("JobSpec", "selector"): "LabelSelector",
    ("CronJobSpec", "jobTemplate"): "JobTemplate",
    ("JobTemplate", "metadata"): "ObjectMeta",
    ("JobTemplate", "spec"): "JobSpec",
    **{("HPASpec", "scaleTargetRef"): "HPATargetRef", ("HPASpec", "metrics"): "HPAMetric",
       ("HPASpec", "behavior"): "HPABehavior", ("HPAMetric", "resource"): "HPAResourceMetric",
       ("HPAResourceMetric", "target"): "HPAMetricTarget", ("HPABehavior", "scaleUp"): "HPAScalingRules",
       ("HPABehavior", "scaleDown"): "HPAScalingRules", ("HPAScalingRules", "policies"): "HPAScalingPolicy"},
    ("LabelSelector", "matchExpressions"): "Requirement",
    ("ServiceSpec", "ports"): "ServicePort",
    ("Subset", "addresses"): "Address",
    ("Subset", "notReadyAddresses"): "Address",
    ("Subset", "ports"): "EndpointPort",
    ("Address", "targetRef"): "ObjectReference",
    ("Endpoint", "conditions"): "EndpointConditions",
    ("Endpoint", "targetRef"): "ObjectReference",
    ("NodeSpec", "taints"): "Taint",
    ("LimitRangeSpec", "limits"): "LimitRangeItem",
    ("NetworkPolicySpec", "podSelector"): "LabelSelector",
    ("NetworkPolicySpec", "ingress"): "IngressRule",
    ("NetworkPolicySpec", "egress"): "EgressRule",
    ("IngressRule", "from"): "Peer",
    ("IngressRule", "ports"): "NetworkPolicyPort",
    ("EgressRule", "to"): "Peer",
    ("EgressRule", "ports"): "NetworkPolicyPort",
    ("Peer", "podSelector"): "LabelSelector",
    ("Peer", "namespaceSelector"): "LabelSelector",
    ("Peer", "ipBlock"): "IPBlock",
    **fieldnames_storage.CHILDREN,
}

_SPEC_SHAPE = {
    "Pod": "PodSpec",
    "Service": "ServiceSpec",
    "ReplicationController": "RCSpec",
    "ReplicaSet": "RSSpec",
    "Deployment": "DeploymentSpec",
    "DaemonSet": "DaemonSetSpec",
    "PodDisruptionBudget": "PDBSpec",
    "Job": "JobSpec",
    "CronJob": "CronJobSpec",
    "HorizontalPodAutoscaler": "HPASpec",
    "Namespace": "NamespaceSpec",
    "Node": "NodeSpec",
    "ResourceQuota": "QuotaSpec",
    "LimitRange": "LimitRangeSpec",
    "NetworkPolicy": "NetworkPolicySpec",
    "Lease": "LeaseSpec",
    **fieldnames_storage.SPEC_SHAPE,
}


def _message(key: str, allowed: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    if not close:
        lowered = {a.lower(): a for a in allowed}
        if key.lower() in lowered:
            close = [lowered[key.lower()]]
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f"unknown field{hint}"


def _walk(value: Any, shape: str, path: str, out: list[FieldError]) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, shape, join(path, i), out)
        return
    if not isinstance(value, dict):
        return  # wrong types are validation's to report
    allowed = FIELDS[shape]
    for key, child in value.items():
        if not isinstance(key, str):
            continue
        if key not in allowed:
            out.append(FieldError(join(path, key), _message(key, allowed)))
            continue
        sub = CHILDREN.get((shape, key))
        if sub is not None:
            _walk(child, sub, join(path, key), out)


def unknown_fields(obj: Any) -> list[FieldError]:
    """Fields of `obj` that its kind does not have, each with a did-you-mean hint when one is close."""
    if not isinstance(obj, dict):
        return []
    kind = obj.get("kind")
    top = TOP_LEVEL.get(kind) if isinstance(kind, str) else None
    if top is None:
        return []
    out: list[FieldError] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        if key not in top:
            out.append(FieldError(key, _message(key, top)))
        elif key == "metadata":
            _walk(value, "ObjectMeta", "metadata", out)
        elif key == "spec" and kind in _SPEC_SHAPE:
            _walk(value, _SPEC_SHAPE[kind], "spec", out)
        elif key == "subsets":
            _walk(value, "Subset", "subsets", out)
        elif key == "involvedObject":
            _walk(value, "ObjectReference", key, out)
        elif key == "source" and kind == "Event":
            _walk(value, "EventSource", key, out)
        elif (shape := _TOP_SHAPES.get((str(kind), key))) is not None:
            _walk(value, shape, key, out)
    return out
