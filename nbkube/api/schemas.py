"""The type and a short description of every field of every served kind, for the OpenAPI documents.

`kubectl explain`, kubectl's client-side validation and its strategic merge patches read the
server's OpenAPI schema; nbkube.apiserver.openapi builds /openapi/v2 and /openapi/v3 from this table.
The shapes named in `nbkube.api.fieldnames.FIELDS` (what validation's unknown-field check knows)
appear here under the same names with exactly the same field names, and `CHILDREN` agrees with the
types below: tests/api/test_schemas.py fails when the two tables drift apart. Shapes that
validation keeps open (securityContext, affinity, volume sources, statuses) are described here too;
they are added under their upstream names.

A field's type is a small string: `string`, `int32`, `int64`, `boolean`, `number`, `byte` (base64),
`time` (RFC 3339), `microtime`, `quantity`, `intstr`, `object` (free-form), a shape name, `[]T`
(a list of T) or `{}T` (a map of string to T).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbkube.api import schemas_batch, schemas_storage

__all__ = ["KIND_SHAPES", "SHAPES", "Shape"]

_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_NET = "io.k8s.api.networking.v1."
_COORD = "io.k8s.api.coordination.v1."
_DISC = "io.k8s.api.discovery.v1."
_RBAC = "io.k8s.api.rbac.v1."
_POLICY = "io.k8s.api.policy.v1."
_AUTOSCALING = "io.k8s.api.autoscaling.v2."


@dataclass(frozen=True)
class Shape:
    """One object shape: its upstream definition name, what it is, and its fields."""

    model: str
    description: str
    fields: dict[str, tuple[str, str]]  # field -> (type, description)
    required: tuple[str, ...] = ()
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


SHAPES: dict[str, Shape] = {}


def _shape(
    name: str,
    model: str,
    description: str,
    fields: dict[str, tuple[str, str]],
    required: tuple[str, ...] = (),
    enums: dict[str, tuple[str, ...]] | None = None,
) -> None:
    SHAPES[name] = Shape(model, description, fields, required, dict(enums or {}))


_API_VERSION = ("string", "APIVersion defines the versioned schema of this representation of an object.")
_KIND = ("string", "Kind is a string value representing the REST resource this object represents.")
_METADATA = ("ObjectMeta", "Standard object's metadata.")
_PROTOCOLS = ("SCTP", "TCP", "UDP")

# --- meta ---------------------------------------------------------------------------------------

_shape("ObjectMeta", _META + "ObjectMeta", "ObjectMeta is metadata that all persisted resources must have.", {
    "name": ("string", "Name must be unique within a namespace. It is the object's identity in its kind."),
    "generateName": ("string", "A prefix from which the server generates a unique name when name is empty."),
    "namespace": ("string", "The namespace the object lives in; empty for cluster-scoped kinds."),
    "uid": ("string", "A unique value the server assigns at creation; never reused."),
    "resourceVersion": ("string", "An opaque version of the object, for optimistic concurrency and watches."),
    "generation": ("int64", "A sequence number of the desired state, set by the server."),
    "creationTimestamp": ("time", "When the server created the object."),
    "deletionTimestamp": ("time", "When the object will be (or began to be) deleted; set by the server."),
    "deletionGracePeriodSeconds": ("int64", "Seconds allowed for graceful termination before removal."),
    "labels": ("{}string", "Map of string keys and values used to organize and select objects."),
    "annotations": ("{}string", "Unstructured key value map for arbitrary metadata; not queryable."),
    "ownerReferences": ("[]OwnerReference", "Objects this object depends on; garbage collection follows them."),
    "finalizers": ("[]string", "Must be empty before the object is deleted from the registry."),
    "managedFields": ("[]ManagedFieldsEntry", "Which manager owns which fields (server-side apply)."),
    "selfLink": ("string", "Deprecated; never set."),
})
_shape("OwnerReference", _META + "OwnerReference", "Enough information to identify an owning object.", {
    "apiVersion": ("string", "API version of the referent."),
    "kind": ("string", "Kind of the referent."),
    "name": ("string", "Name of the referent."),
    "uid": ("string", "UID of the referent."),
    "controller": ("boolean", "If true, this reference points to the managing controller."),
    "blockOwnerDeletion": ("boolean", "If true, the owner cannot be deleted before this object is removed."),
}, required=("apiVersion", "kind", "name", "uid"))
_shape("ManagedFieldsEntry", _META + "ManagedFieldsEntry", "A workflow's ownership of fields.", {
    "manager": ("string", "The name of the workflow managing these fields."),
    "operation": ("string", "The operation that led to this entry: Apply or Update."),
    "apiVersion": ("string", "The version of the resource these fields are in."),
    "time": ("time", "When this entry was last changed."),
    "fieldsType": ("string", "The format of fieldsV1: FieldsV1."),
    "fieldsV1": ("object", "The set of fields, in the FieldsV1 format."),
    "subresource": ("string", "The subresource used to update the object, if any."),
})
_shape("LabelSelector", _META + "LabelSelector", "A label query over a set of objects; the results of "
       "matchLabels and matchExpressions are ANDed. An empty selector matches all objects.", {
    "matchLabels": ("{}string", "A map of {key,value} pairs, each equivalent to an In requirement."),
    "matchExpressions": ("[]Requirement", "A list of label selector requirements, ANDed."),
})
_shape("Requirement", _META + "LabelSelectorRequirement", "A selector that contains a key, an operator "
       "and values.", {
    "key": ("string", "The label key that the selector applies to."),
    "operator": ("string", "How the key relates to the values: In, NotIn, Exists or DoesNotExist."),
    "values": ("[]string", "Values for In and NotIn (non-empty); empty for Exists and DoesNotExist."),
}, required=("key", "operator"))
_shape("Condition", _META + "Condition", "One aspect of the current state of an object.", {
    "type": ("string", "Type of the condition."),
    "status": ("string", "Status of the condition: True, False or Unknown."),
    "observedGeneration": ("int64", "The metadata.generation the condition was set for."),
    "lastTransitionTime": ("time", "When the condition last changed status."),
    "reason": ("string", "A CamelCase reason for the last transition."),
    "message": ("string", "A human readable message about the transition."),
}, required=("type", "status", "lastTransitionTime", "reason", "message"))

# --- core: references and small pieces ---------------------------------------------------------

_shape("ObjectReference", _CORE + "ObjectReference", "A reference to an object by kind, namespace and name.", {
    "kind": ("string", "Kind of the referent."),
    "namespace": ("string", "Namespace of the referent."),
    "name": ("string", "Name of the referent."),
    "uid": ("string", "UID of the referent."),
    "apiVersion": ("string", "API version of the referent."),
    "resourceVersion": ("string", "Specific resourceVersion the reference is made to, if any."),
    "fieldPath": ("string", "A piece of the object rather than the whole (e.g. spec.containers{name})."),
})
_shape("LocalObjectReference", _CORE + "LocalObjectReference", "A reference to an object in the same "
       "namespace, by name.", {"name": ("string", "Name of the referent.")})

# --- core: containers -----------------------------------------------------------------------------

_CONTAINER_FIELDS: dict[str, tuple[str, str]] = {
    "name": ("string", "Name of the container (a DNS label), unique within the pod."),
    "image": ("string", "Container image name."),
    "command": ("[]string", "Entrypoint array; the image's ENTRYPOINT is used when empty."),
    "args": ("[]string", "Arguments to the entrypoint; the image's CMD is used when empty."),
    "workingDir": ("string", "The container's working directory; the image's default when empty."),
    "ports": ("[]ContainerPort", "List of ports to expose from the container."),
    "envFrom": ("[]EnvFromSource", "Sources to populate environment variables from."),
    "env": ("[]EnvVar", "List of environment variables to set in the container."),
    "resources": ("Resources", "Compute resources required by this container."),
    "resizePolicy": ("[]ContainerResizePolicy", "Resources resize policy for the container."),
    "restartPolicy": ("string", "Restart behaviour of an init container: Always makes it a sidecar."),
    "volumeMounts": ("[]VolumeMount", "Pod volumes to mount into the container's filesystem."),
    "volumeDevices": ("[]VolumeDevice", "Block devices to be used by the container."),
    "livenessProbe": ("Probe", "Periodic probe of container liveness; the container restarts when it fails."),
    "readinessProbe": ("Probe", "Periodic probe of container readiness; unready pods leave service endpoints."),
    "startupProbe": ("Probe", "Probe that must succeed before the other probes start."),
    "lifecycle": ("Lifecycle", "Actions to take in response to container lifecycle events."),
    "terminationMessagePath": ("string", "File into which the container's termination message is written."),
    "terminationMessagePolicy": ("string", "How the termination message is populated: File or "
                                 "FallbackToLogsOnError."),
    "imagePullPolicy": ("string", "Always, Never or IfNotPresent."),
    "securityContext": ("SecurityContext", "Security options the container should run with."),
    "stdin": ("boolean", "Whether the container allocates a buffer for stdin."),
    "stdinOnce": ("boolean", "Whether stdin is closed after the first attach session."),
    "tty": ("boolean", "Whether the container allocates a TTY for itself."),
}
_CONTAINER_ENUMS = {
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "terminationMessagePolicy": ("FallbackToLogsOnError", "File"),
}
_shape("Container", _CORE + "Container", "A single application container to run within a pod.",
       _CONTAINER_FIELDS, required=("name",), enums=_CONTAINER_ENUMS)
_shape("EphemeralContainer", _CORE + "EphemeralContainer", "A temporary container added to a running pod "
       "for troubleshooting.", {
    **_CONTAINER_FIELDS,
    "targetContainerName": ("string", "The container whose namespaces this one targets."),
}, required=("name",), enums=_CONTAINER_ENUMS)
_shape("ContainerPort", _CORE + "ContainerPort", "A network port in a single container.", {
    "name": ("string", "An IANA_SVC_NAME unique within the pod; services can refer to the port by it."),
    "hostPort": ("int32", "Number of the port to expose on the host (0 < x < 65536); mostly not needed."),
    "containerPort": ("int32", "Number of the port to expose on the pod's IP address (0 < x < 65536)."),
    "protocol": ("string", "Protocol for the port: UDP, TCP or SCTP. Defaults to TCP."),
    "hostIP": ("string", "What host IP to bind the external port to."),
}, required=("containerPort",), enums={"protocol": _PROTOCOLS})
_shape("EnvVar", _CORE + "EnvVar", "An environment variable present in a container.", {
    "name": ("string", "Name of the environment variable."),
    "value": ("string", "The variable's value; $(VAR) references to earlier variables are expanded."),
    "valueFrom": ("EnvVarSource", "Source for the variable's value; cannot be used with value."),
}, required=("name",))
_shape("EnvVarSource", _CORE + "EnvVarSource", "A source for the value of an EnvVar.", {
    "fieldRef": ("ObjectFieldSelector", "A field of the pod (downward API)."),
    "resourceFieldRef": ("ResourceFieldSelector", "A resource of the container: limits or requests."),
    "configMapKeyRef": ("ConfigMapKeySelector", "A key of a ConfigMap in the pod's namespace."),
    "secretKeyRef": ("SecretKeySelector", "A key of a secret in the pod's namespace."),
})
_shape("ObjectFieldSelector", _CORE + "ObjectFieldSelector", "Selects a field of the object.", {
    "apiVersion": ("string", "Version of the schema the fieldPath is written in; defaults to v1."),
    "fieldPath": ("string", "Path of the field to select."),
}, required=("fieldPath",))
_shape("ResourceFieldSelector", _CORE + "ResourceFieldSelector", "A container resource and its output "
       "format.", {
    "containerName": ("string", "Container name; required for volumes, optional for env vars."),
    "resource": ("string", "The resource to select, e.g. limits.cpu."),
    "divisor": ("quantity", "Output format of the exposed resources; defaults to 1."),
}, required=("resource",))
_shape("ConfigMapKeySelector", _CORE + "ConfigMapKeySelector", "Selects a key from a ConfigMap.", {
    "name": ("string", "Name of the ConfigMap."),
    "key": ("string", "The key to select."),
    "optional": ("boolean", "Whether the ConfigMap or its key must be defined."),
}, required=("key",))
_shape("SecretKeySelector", _CORE + "SecretKeySelector", "Selects a key of a Secret.", {
    "name": ("string", "Name of the Secret."),
    "key": ("string", "The key of the secret to select from."),
    "optional": ("boolean", "Whether the Secret or its key must be defined."),
}, required=("key",))
_shape("EnvFromSource", _CORE + "EnvFromSource", "A source of a set of environment variables.", {
    "prefix": ("string", "An optional identifier to prepend to each key."),
    "configMapRef": ("ConfigMapEnvSource", "The ConfigMap to select from."),
    "secretRef": ("SecretEnvSource", "The Secret to select from."),
})
_shape("ConfigMapEnvSource", _CORE + "ConfigMapEnvSource", "Every key of a ConfigMap as an environment "
       "variable.", {
    "name": ("string", "Name of the ConfigMap."),
    "optional": ("boolean", "Whether the ConfigMap must be defined."),
})
_shape("SecretEnvSource", _CORE + "SecretEnvSource", "Every key of a Secret as an environment variable.", {
    "name": ("string", "Name of the Secret."),
    "optional": ("boolean", "Whether the Secret must be defined."),
})
_shape("VolumeMount", _CORE + "VolumeMount", "The mounting of a volume within a container.", {
    "name": ("string", "This must match the name of a volume of the pod."),
    "readOnly": ("boolean", "Mounted read-only if true, read-write otherwise."),
    "recursiveReadOnly": ("string", "Whether read-only mounts are made read-only recursively."),
    "mountPath": ("string", "Path within the container at which the volume is mounted; no ':'."),
    "subPath": ("string", "Path within the volume to mount instead of its root."),
    "mountPropagation": ("string", "How mounts are propagated between host and container."),
    "subPathExpr": ("string", "Like subPath, with $(VAR_NAME) expanded from the environment."),
}, required=("name", "mountPath"))
_shape("VolumeDevice", _CORE + "VolumeDevice", "A raw block device within a container.", {
    "name": ("string", "Must match the name of a persistentVolumeClaim in the pod."),
    "devicePath": ("string", "The path inside the container the device is mapped to."),
}, required=("name", "devicePath"))
_shape("Resources", _CORE + "ResourceRequirements", "Compute resource requirements.", {
    "limits": ("{}quantity", "The maximum amount of compute resources allowed."),
    "requests": ("{}quantity", "The minimum amount of compute resources required; defaults to limits."),
    "claims": ("[]ResourceClaim", "Dynamically allocated resources (spec.resourceClaims) used here."),
})
_shape("ResourceClaim", _CORE + "ResourceClaim", "One entry of spec.resourceClaims used by a container.", {
    "name": ("string", "The name of an entry of the pod's spec.resourceClaims."),
    "request": ("string", "The request of the claim to use, if only one is wanted."),
}, required=("name",))
_shape("ContainerResizePolicy", _CORE + "ContainerResizePolicy", "How a resource is resized in place.", {
    "resourceName": ("string", "Name of the resource: cpu or memory."),
    "restartPolicy": ("string", "NotRequired or RestartContainer."),
}, required=("resourceName", "restartPolicy"))
_PROBE_HANDLERS: dict[str, tuple[str, str]] = {
    "exec": ("ExecAction", "Exec specifies a command to execute in the container."),
    "httpGet": ("HTTPGet", "HTTPGet specifies an HTTP GET request to perform."),
    "tcpSocket": ("TCPSocketAction", "TCPSocket specifies a connection to a TCP port."),
}
_shape("Probe", _CORE + "Probe", "A health check performed against a container.", {
    **_PROBE_HANDLERS,
    "grpc": ("GRPCAction", "GRPC specifies a GRPC HealthCheckRequest."),
    "initialDelaySeconds": ("int32", "Seconds after the container has started before the first probe."),
    "timeoutSeconds": ("int32", "Seconds after which the probe times out. Defaults to 1."),
    "periodSeconds": ("int32", "How often (in seconds) to perform the probe. Defaults to 10."),
    "successThreshold": ("int32", "Consecutive successes for the probe to count as successful after a "
                         "failure. Defaults to 1; must be 1 for liveness and startup."),
    "failureThreshold": ("int32", "Consecutive failures for the probe to count as failed. Defaults to 3."),
    "terminationGracePeriodSeconds": ("int64", "Grace period for the pod when this probe fails."),
})
_shape("ExecAction", _CORE + "ExecAction", "A command to run in the container.", {
    "command": ("[]string", "The command line; exit status 0 is healthy. Not run in a shell."),
})
_shape("HTTPGet", _CORE + "HTTPGetAction", "An HTTP GET request.", {
    "path": ("string", "Path to access on the HTTP server."),
    "port": ("intstr", "Number or name of the port to access on the container."),
    "host": ("string", "Host name to connect to; defaults to the pod IP."),
    "scheme": ("string", "Scheme to use for connecting: HTTP or HTTPS. Defaults to HTTP."),
    "httpHeaders": ("[]HTTPHeader", "Custom headers to set in the request."),
}, required=("port",), enums={"scheme": ("HTTP", "HTTPS")})
_shape("HTTPHeader", _CORE + "HTTPHeader", "A custom header used in HTTP probes.", {
    "name": ("string", "The header field name."),
    "value": ("string", "The header field value."),
}, required=("name", "value"))
_shape("TCPSocketAction", _CORE + "TCPSocketAction", "An action based on opening a socket.", {
    "port": ("intstr", "Number or name of the port to access on the container."),
    "host": ("string", "Host name to connect to; defaults to the pod IP."),
}, required=("port",))
_shape("GRPCAction", _CORE + "GRPCAction", "A gRPC health check.", {
    "port": ("int32", "Port number of the gRPC service."),
    "service": ("string", "Name of the service to place in the gRPC HealthCheckRequest."),
}, required=("port",))
_shape("SleepAction", _CORE + "SleepAction", "A sleep action.", {
    "seconds": ("int64", "Seconds to sleep."),
}, required=("seconds",))
_shape("Lifecycle", _CORE + "Lifecycle", "Actions the system takes in response to container lifecycle "
       "events.", {
    "postStart": ("LifecycleHandler", "Called immediately after the container is created."),
    "preStop": ("LifecycleHandler", "Called immediately before the container is terminated."),
    "stopSignal": ("string", "The signal sent to stop the container."),
})
_shape("LifecycleHandler", _CORE + "LifecycleHandler", "A specific action to take in a lifecycle hook.", {
    **_PROBE_HANDLERS,
    "sleep": ("SleepAction", "Sleep represents a duration the container sleeps."),
})
_SECURITY_IDENTITY: dict[str, tuple[str, str]] = {
    "runAsUser": ("int64", "The UID to run the entrypoint of the container process."),
    "runAsGroup": ("int64", "The GID to run the entrypoint of the container process."),
    "runAsNonRoot": ("boolean", "The container must run as a non-root user."),
    "seLinuxOptions": ("SELinuxOptions", "The SELinux context to apply."),
    "seccompProfile": ("SeccompProfile", "The seccomp options to use."),
    "appArmorProfile": ("AppArmorProfile", "The AppArmor options to use."),
    "windowsOptions": ("WindowsSecurityContextOptions", "Windows specific settings."),
}
_shape("SecurityContext", _CORE + "SecurityContext", "Security configuration of a container.", {
    **_SECURITY_IDENTITY,
    "capabilities": ("Capabilities", "The capabilities to add or drop when running the container."),
    "privileged": ("boolean", "Run the container in privileged mode."),
    "allowPrivilegeEscalation": ("boolean", "Whether a process can gain more privileges than its parent."),
    "readOnlyRootFilesystem": ("boolean", "Whether the container has a read-only root filesystem."),
    "procMount": ("string", "The type of proc mount: Default or Unmasked."),
})
_shape("PodSecurityContext", _CORE + "PodSecurityContext", "Pod-level security attributes and common "
       "container settings.", {
    **_SECURITY_IDENTITY,
    "supplementalGroups": ("[]int64", "Groups added to the first process of each container."),
    "supplementalGroupsPolicy": ("string", "How supplementalGroups are calculated: Merge or Strict."),
    "fsGroup": ("int64", "A supplemental group that owns the pod's volumes."),
    "fsGroupChangePolicy": ("string", "When volume ownership is changed: OnRootMismatch or Always."),
    "sysctls": ("[]Sysctl", "Namespaced sysctls used for the pod."),
    "seLinuxChangePolicy": ("string", "How the SELinux label is applied to volumes."),
})
_shape("Capabilities", _CORE + "Capabilities", "POSIX capabilities to add or remove.", {
    "add": ("[]string", "Added capabilities."),
    "drop": ("[]string", "Removed capabilities."),
})
_shape("SELinuxOptions", _CORE + "SELinuxOptions", "The labels to be applied to the container.", {
    "user": ("string", "SELinux user label."),
    "role": ("string", "SELinux role label."),
    "type": ("string", "SELinux type label."),
    "level": ("string", "SELinux level label."),
})
_shape("SeccompProfile", _CORE + "SeccompProfile", "A pod's or container's seccomp profile.", {
    "type": ("string", "Localhost, RuntimeDefault or Unconfined."),
    "localhostProfile": ("string", "A profile on the node; only with type Localhost."),
}, required=("type",))
_shape("AppArmorProfile", _CORE + "AppArmorProfile", "A pod's or container's AppArmor profile.", {
    "type": ("string", "Localhost, RuntimeDefault or Unconfined."),
    "localhostProfile": ("string", "A profile loaded on the node; only with type Localhost."),
}, required=("type",))
_shape("WindowsSecurityContextOptions", _CORE + "WindowsSecurityContextOptions", "Windows-specific "
       "options.", {
    "gmsaCredentialSpecName": ("string", "The name of the GMSA credential spec to use."),
    "gmsaCredentialSpec": ("string", "The contents of the GMSA credential spec."),
    "runAsUserName": ("string", "The UserName in Windows to run the entrypoint."),
    "hostProcess": ("boolean", "Whether the container runs as a 'Host Process' container."),
})
_shape("Sysctl", _CORE + "Sysctl", "A kernel parameter to be set.", {
    "name": ("string", "Name of a property to set."),
    "value": ("string", "Value of a property to set."),
}, required=("name", "value"))

# --- core: pods ------------------------------------------------------------------------------------

_shape("PodSpec", _CORE + "PodSpec", "A description of a pod.", {
    "volumes": ("[]Volume", "Volumes that can be mounted by containers of the pod."),
    "initContainers": ("[]Container", "Containers run in order before the app containers start."),
    "containers": ("[]Container", "Containers belonging to the pod; at least one."),
    "ephemeralContainers": ("[]EphemeralContainer", "Ephemeral containers run in this pod for debugging."),
    "restartPolicy": ("string", "Restart policy for all containers: Always, OnFailure or Never."),
    "terminationGracePeriodSeconds": ("int64", "Seconds the pod needs to terminate gracefully. "
                                      "Defaults to 30."),
    "activeDeadlineSeconds": ("int64", "Seconds the pod may be active before the system fails it."),
    "dnsPolicy": ("string", "DNS policy: ClusterFirstWithHostNet, ClusterFirst, Default or None."),
    "nodeSelector": ("{}string", "Labels a node must have for the pod to fit on it."),
    "serviceAccountName": ("string", "Name of the ServiceAccount to use to run this pod."),
    "serviceAccount": ("string", "Deprecated alias for serviceAccountName."),
    "automountServiceAccountToken": ("boolean", "Whether a service account token is mounted."),
    "nodeName": ("string", "The node the pod is bound to; set by the scheduler."),
    "hostNetwork": ("boolean", "Use the host's network namespace."),
    "hostPID": ("boolean", "Use the host's pid namespace."),
    "hostIPC": ("boolean", "Use the host's ipc namespace."),
    "shareProcessNamespace": ("boolean", "Share a single process namespace between all containers."),
    "securityContext": ("PodSecurityContext", "Pod-level security attributes."),
    "imagePullSecrets": ("[]LocalObjectReference", "Secrets used to pull the pod's images."),
    "hostname": ("string", "The pod's hostname; defaults to the pod's name."),
    "subdomain": ("string", "The pod's subdomain: <hostname>.<subdomain>.<namespace>.svc.<domain>."),
    "affinity": ("Affinity", "The pod's scheduling constraints."),
    "schedulerName": ("string", "The scheduler that dispatches the pod."),
    "tolerations": ("[]Toleration", "The pod's tolerations of node taints."),
    "hostAliases": ("[]HostAlias", "Entries added to the pod's hosts file."),
    "priorityClassName": ("string", "The pod's priority class."),
    "priority": ("int32", "The priority value, from the priority class."),
    "dnsConfig": ("PodDNSConfig", "DNS parameters of the pod, merged with those of dnsPolicy."),
    "readinessGates": ("[]PodReadinessGate", "Extra conditions evaluated for pod readiness."),
    "runtimeClassName": ("string", "The RuntimeClass to run this pod with."),
    "enableServiceLinks": ("boolean", "Whether service information is injected as environment variables."),
    "preemptionPolicy": ("string", "Never or PreemptLowerPriority."),
    "overhead": ("{}quantity", "Resource overhead of running the pod for its runtime class."),
    "topologySpreadConstraints": ("[]TopologySpreadConstraint", "How the pods spread across topology "
                                  "domains."),
    "setHostnameAsFQDN": ("boolean", "The pod's hostname is its fully qualified domain name."),
    "os": ("PodOS", "The operating system of the pod's containers."),
    "hostUsers": ("boolean", "Use the host's user namespace."),
    "schedulingGates": ("[]PodSchedulingGate", "Gates that block scheduling while present."),
    "resourceClaims": ("[]PodResourceClaim", "ResourceClaims the pod needs."),
    "resources": ("Resources", "Total resources of the pod, shared by its containers."),
}, required=("containers",), enums={
    "restartPolicy": ("Always", "Never", "OnFailure"),
    "dnsPolicy": ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
})
_shape("Toleration", _CORE + "Toleration", "Tolerates any taint that matches the triple "
       "<key,value,effect> using the operator.", {
    "key": ("string", "The taint key the toleration applies to; empty matches all keys."),
    "operator": ("string", "Exists or Equal. Defaults to Equal."),
    "value": ("string", "The taint value the toleration matches to."),
    "effect": ("string", "The taint effect to match: NoSchedule, PreferNoSchedule or NoExecute."),
    "tolerationSeconds": ("int64", "How long a NoExecute taint is tolerated before eviction."),
})
_shape("HostAlias", _CORE + "HostAlias", "An entry of the pod's hosts file.", {
    "ip": ("string", "IP address of the host file entry."),
    "hostnames": ("[]string", "Hostnames for the above IP address."),
}, required=("ip",))
_shape("PodDNSConfig", _CORE + "PodDNSConfig", "DNS parameters of a pod.", {
    "nameservers": ("[]string", "DNS name server IP addresses."),
    "searches": ("[]string", "DNS search domains for host-name lookup."),
    "options": ("[]PodDNSConfigOption", "DNS resolver options."),
})
_shape("PodDNSConfigOption", _CORE + "PodDNSConfigOption", "A DNS resolver option of a pod.", {
    "name": ("string", "Name of the option."),
    "value": ("string", "Value of the option."),
})
_shape("PodReadinessGate", _CORE + "PodReadinessGate", "A pod condition readiness waits for.", {
    "conditionType": ("string", "A condition type of the pod's condition list."),
}, required=("conditionType",))
_shape("TopologySpreadConstraint", _CORE + "TopologySpreadConstraint", "How matching pods spread among "
       "a topology.", {
    "maxSkew": ("int32", "The degree to which pods may be unevenly distributed."),
    "topologyKey": ("string", "The key of node labels; nodes with the same value are one domain."),
    "whenUnsatisfiable": ("string", "DoNotSchedule or ScheduleAnyway."),
    "labelSelector": ("LabelSelector", "Finds the matching pods."),
    "minDomains": ("int32", "Minimum number of eligible domains."),
    "nodeAffinityPolicy": ("string", "Honor or Ignore the pod's nodeAffinity/nodeSelector."),
    "nodeTaintsPolicy": ("string", "Honor or Ignore node taints."),
    "matchLabelKeys": ("[]string", "Pod label keys whose values are added to the selector."),
}, required=("maxSkew", "topologyKey", "whenUnsatisfiable"))
_shape("PodOS", _CORE + "PodOS", "The operating system of a pod.", {
    "name": ("string", "The operating system: linux or windows."),
}, required=("name",))
_shape("PodSchedulingGate", _CORE + "PodSchedulingGate", "A gate that blocks scheduling of a pod.", {
    "name": ("string", "Name of the scheduling gate; unique in the pod."),
}, required=("name",))
_shape("PodResourceClaim", _CORE + "PodResourceClaim", "A ResourceClaim the pod needs.", {
    "name": ("string", "Name of this claim inside the pod."),
    "resourceClaimName": ("string", "Name of a ResourceClaim in the pod's namespace."),
    "resourceClaimTemplateName": ("string", "Name of a ResourceClaimTemplate to create the claim from."),
}, required=("name",))
_shape("Affinity", _CORE + "Affinity", "A group of affinity scheduling rules.", {
    "nodeAffinity": ("NodeAffinity", "Node affinity scheduling rules for the pod."),
    "podAffinity": ("PodAffinity", "Rules to co-locate the pod with other pods."),
    "podAntiAffinity": ("PodAntiAffinity", "Rules to keep the pod away from other pods."),
})
_shape("NodeAffinity", _CORE + "NodeAffinity", "Node affinity scheduling rules.", {
    "requiredDuringSchedulingIgnoredDuringExecution": ("NodeSelector", "Nodes the pod must fit on."),
    "preferredDuringSchedulingIgnoredDuringExecution": ("[]PreferredSchedulingTerm", "Weighted "
                                                        "preferences for nodes."),
})
_shape("NodeSelector", _CORE + "NodeSelector", "The union of the results of node selector terms.", {
    "nodeSelectorTerms": ("[]NodeSelectorTerm", "A list of node selector terms; ORed."),
}, required=("nodeSelectorTerms",))
_shape("NodeSelectorTerm", _CORE + "NodeSelectorTerm", "Node requirements, ANDed.", {
    "matchExpressions": ("[]NodeSelectorRequirement", "Requirements by node labels."),
    "matchFields": ("[]NodeSelectorRequirement", "Requirements by node fields."),
})
_shape("NodeSelectorRequirement", _CORE + "NodeSelectorRequirement", "A node selector requirement.", {
    "key": ("string", "The label key that the selector applies to."),
    "operator": ("string", "In, NotIn, Exists, DoesNotExist, Gt or Lt."),
    "values": ("[]string", "An array of string values."),
}, required=("key", "operator"))
_shape("PreferredSchedulingTerm", _CORE + "PreferredSchedulingTerm", "A weighted node preference.", {
    "weight": ("int32", "Weight associated with matching the term, 1-100."),
    "preference": ("NodeSelectorTerm", "A node selector term."),
}, required=("weight", "preference"))
_AFFINITY_TERMS: dict[str, tuple[str, str]] = {
    "requiredDuringSchedulingIgnoredDuringExecution": ("[]PodAffinityTerm", "Terms that must hold at "
                                                       "scheduling."),
    "preferredDuringSchedulingIgnoredDuringExecution": ("[]WeightedPodAffinityTerm", "Weighted "
                                                        "preferences."),
}
_shape("PodAffinity", _CORE + "PodAffinity", "Inter-pod affinity scheduling rules.", _AFFINITY_TERMS)
_shape("PodAntiAffinity", _CORE + "PodAntiAffinity", "Inter-pod anti-affinity scheduling rules.",
       _AFFINITY_TERMS)
_shape("PodAffinityTerm", _CORE + "PodAffinityTerm", "A set of pods the pod should (not) be co-located "
       "with, on nodes sharing topologyKey's value.", {
    "labelSelector": ("LabelSelector", "A label query over a set of pods."),
    "namespaces": ("[]string", "Namespaces the labelSelector applies to."),
    "topologyKey": ("string", "The node label key defining co-location."),
    "namespaceSelector": ("LabelSelector", "A label query over namespaces."),
    "matchLabelKeys": ("[]string", "Pod label keys merged into labelSelector with In."),
    "mismatchLabelKeys": ("[]string", "Pod label keys merged into labelSelector with NotIn."),
}, required=("topologyKey",))
_shape("WeightedPodAffinityTerm", _CORE + "WeightedPodAffinityTerm", "A weighted pod affinity term.", {
    "weight": ("int32", "Weight of the term, 1-100."),
    "podAffinityTerm": ("PodAffinityTerm", "The term."),
}, required=("weight", "podAffinityTerm"))
_shape("PodTemplate", _CORE + "PodTemplateSpec", "Data a pod has when created from a template.", {
    "metadata": ("ObjectMeta", "Standard object's metadata."),
    "spec": ("PodSpec", "Specification of the desired behaviour of the pod."),
})

# --- core: volumes ---------------------------------------------------------------------------------

_OPAQUE_SOURCES = ["gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "iscsi", "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos"]
_shape("Volume", _CORE + "Volume", "A named volume in a pod that may be accessed by any container.", {
    "name": ("string", "Name of the volume (a DNS label), unique within the pod."),
    "hostPath": ("HostPathVolumeSource", "A directory or file on the host."),
    "emptyDir": ("EmptyDirVolumeSource", "A temporary directory that shares the pod's lifetime."),
    "secret": ("SecretVolumeSource", "A secret's keys as files."),
    "persistentVolumeClaim": ("PersistentVolumeClaimVolumeSource", "A PersistentVolumeClaim in the "
                              "pod's namespace."),
    "downwardAPI": ("DownwardAPIVolumeSource", "Information about the pod as files."),
    "configMap": ("ConfigMapVolumeSource", "A ConfigMap's keys as files."),
    "projected": ("ProjectedVolumeSource", "Items of several sources in one directory."),
    "nfs": ("NFSVolumeSource", "An NFS mount on the host."),
    "csi": ("CSIVolumeSource", "Ephemeral storage handled by a CSI driver."),
    "ephemeral": ("EphemeralVolumeSource", "A volume handled by a cluster storage driver, with a claim "
                  "per pod."),
    "image": ("ImageVolumeSource", "An OCI object (image or artifact) mounted read-only."),
    **{
        s: ("object", f"A {s} volume (a cloud or legacy volume plugin); its fields are not described "
            "by this server's schema.")
        for s in _OPAQUE_SOURCES
    },
}, required=("name",))
_shape("HostPathVolumeSource", _CORE + "HostPathVolumeSource", "A host path mapped into a pod.", {
    "path": ("string", "Path of the directory on the host."),
    "type": ("string", "Type for the HostPath volume; defaults to \"\" (no checks)."),
}, required=("path",))
_shape("EmptyDirVolumeSource", _CORE + "EmptyDirVolumeSource", "An empty directory for a pod.", {
    "medium": ("string", "The storage medium: \"\" (the node's default) or Memory."),
    "sizeLimit": ("quantity", "Total amount of local storage required."),
})
_shape("KeyToPath", _CORE + "KeyToPath", "Maps a string key to a path within a volume.", {
    "key": ("string", "The key to project."),
    "path": ("string", "The relative path of the file to map the key to."),
    "mode": ("int32", "Mode bits of this file, 0000-0777."),
}, required=("key", "path"))
_shape("SecretVolumeSource", _CORE + "SecretVolumeSource", "A Secret's keys as files.", {
    "secretName": ("string", "Name of the secret in the pod's namespace."),
    "items": ("[]KeyToPath", "The keys to project, and where; all keys when empty."),
    "defaultMode": ("int32", "Mode bits of created files, 0000-0777. Defaults to 0644."),
    "optional": ("boolean", "Whether the Secret or its keys must be defined."),
})
_shape("ConfigMapVolumeSource", _CORE + "ConfigMapVolumeSource", "A ConfigMap's keys as files.", {
    "name": ("string", "Name of the ConfigMap."),
    "items": ("[]KeyToPath", "The keys to project, and where; all keys when empty."),
    "defaultMode": ("int32", "Mode bits of created files, 0000-0777. Defaults to 0644."),
    "optional": ("boolean", "Whether the ConfigMap or its keys must be defined."),
})
_shape("PersistentVolumeClaimVolumeSource", _CORE + "PersistentVolumeClaimVolumeSource", "A reference to "
       "a PersistentVolumeClaim in the same namespace.", {
    "claimName": ("string", "Name of the PersistentVolumeClaim."),
    "readOnly": ("boolean", "Force the ReadOnly setting in VolumeMounts."),
}, required=("claimName",))
_shape("DownwardAPIVolumeSource", _CORE + "DownwardAPIVolumeSource", "Pod information as files.", {
    "items": ("[]DownwardAPIVolumeFile", "The files."),
    "defaultMode": ("int32", "Mode bits of created files, 0000-0777. Defaults to 0644."),
})
_shape("DownwardAPIVolumeFile", _CORE + "DownwardAPIVolumeFile", "A file holding pod information.", {
    "path": ("string", "Relative path name of the file to be created."),
    "fieldRef": ("ObjectFieldSelector", "A field of the pod: metadata labels, annotations, name or "
                 "namespace."),
    "resourceFieldRef": ("ResourceFieldSelector", "A resource of a container."),
    "mode": ("int32", "Mode bits of this file, 0000-0777."),
}, required=("path",))
_shape("ProjectedVolumeSource", _CORE + "ProjectedVolumeSource", "Several sources in one directory.", {
    "sources": ("[]VolumeProjection", "The volume projections."),
    "defaultMode": ("int32", "Mode bits of created files, 0000-0777."),
})
_shape("VolumeProjection", _CORE + "VolumeProjection", "One projection of a projected volume.", {
    "secret": ("SecretProjection", "Information about the secret data to project."),
    "configMap": ("ConfigMapProjection", "Information about the ConfigMap data to project."),
    "downwardAPI": ("DownwardAPIProjection", "Information about the downwardAPI data to project."),
    "serviceAccountToken": ("ServiceAccountTokenProjection", "A service account token to project."),
    "clusterTrustBundle": ("object", "A ClusterTrustBundle's certificates; its fields are not described "
                           "by this server's schema."),
})
_shape("SecretProjection", _CORE + "SecretProjection", "A Secret projected into a projected volume.", {
    "name": ("string", "Name of the Secret."),
    "items": ("[]KeyToPath", "The keys to project, and where."),
    "optional": ("boolean", "Whether the Secret or its keys must be defined."),
})
_shape("ConfigMapProjection", _CORE + "ConfigMapProjection", "A ConfigMap projected into a projected "
       "volume.", {
    "name": ("string", "Name of the ConfigMap."),
    "items": ("[]KeyToPath", "The keys to project, and where."),
    "optional": ("boolean", "Whether the ConfigMap or its keys must be defined."),
})
_shape("DownwardAPIProjection", _CORE + "DownwardAPIProjection", "Pod information projected into a "
       "projected volume.", {
    "items": ("[]DownwardAPIVolumeFile", "The files."),
})
_shape("ServiceAccountTokenProjection", _CORE + "ServiceAccountTokenProjection", "A service account "
       "token projected into a projected volume.", {
    "audience": ("string", "The intended audience of the token."),
    "expirationSeconds": ("int64", "The requested duration of validity of the token."),
    "path": ("string", "The path relative to the mount point of the file to project the token into."),
}, required=("path",))
_shape("NFSVolumeSource", _CORE + "NFSVolumeSource", "An NFS mount.", {
    "server": ("string", "Hostname or IP address of the NFS server."),
    "path": ("string", "Path exported by the NFS server."),
    "readOnly": ("boolean", "Mount the export read-only."),
}, required=("server", "path"))
_shape("CSIVolumeSource", _CORE + "CSIVolumeSource", "Ephemeral storage handled by a CSI driver.", {
    "driver": ("string", "Name of the CSI driver."),
    "readOnly": ("boolean", "Read-only configuration for the volume."),
    "fsType": ("string", "Filesystem type to mount."),
    "volumeAttributes": ("{}string", "Driver-specific properties."),
    "nodePublishSecretRef": ("LocalObjectReference", "A secret passed to the driver."),
}, required=("driver",))
_shape("EphemeralVolumeSource", _CORE + "EphemeralVolumeSource", "A volume with a claim per pod.", {
    "volumeClaimTemplate": ("object", "The PersistentVolumeClaim template; its fields are not described "
                            "by this server's schema."),
})
_shape("ImageVolumeSource", _CORE + "ImageVolumeSource", "An OCI object mounted as a volume.", {
    "reference": ("string", "Image or artifact reference to be used."),
    "pullPolicy": ("string", "Always, Never or IfNotPresent."),
})

# --- core: pod status ------------------------------------------------------------------------------

_shape("PodStatus", _CORE + "PodStatus", "The most recently observed status of a pod.", {
    "phase": ("string", "Pending, Running, Succeeded, Failed or Unknown."),
    "conditions": ("[]PodCondition", "Current service state of the pod."),
    "message": ("string", "Why the pod is in this condition."),
    "reason": ("string", "A brief CamelCase message of why the pod is in this state."),
    "nominatedNodeName": ("string", "A node the pod may be scheduled on after preemption."),
    "hostIP": ("string", "IP address of the host the pod is assigned to."),
    "hostIPs": ("[]HostIP", "IP addresses of the host."),
    "podIP": ("string", "IP address allocated to the pod."),
    "podIPs": ("[]PodIP", "IP addresses allocated to the pod."),
    "startTime": ("time", "When the pod was acknowledged by the node agent."),
    "initContainerStatuses": ("[]ContainerStatus", "Statuses of the init containers."),
    "containerStatuses": ("[]ContainerStatus", "Statuses of the containers."),
    "qosClass": ("string", "The quality of service class: Guaranteed, Burstable or BestEffort."),
    "ephemeralContainerStatuses": ("[]ContainerStatus", "Statuses of the ephemeral containers."),
    "resize": ("string", "Status of a resize of the pod's resources."),
    "observedGeneration": ("int64", "The metadata.generation this status was observed for."),
})
_shape("PodCondition", _CORE + "PodCondition", "The state of one aspect of a pod.", {
    "type": ("string", "PodScheduled, Initialized, ContainersReady, Ready, ..."),
    "status": ("string", "True, False or Unknown."),
    "observedGeneration": ("int64", "The metadata.generation the condition was set for."),
    "lastProbeTime": ("time", "Last time the condition was probed."),
    "lastTransitionTime": ("time", "Last time the condition changed status."),
    "reason": ("string", "Unique, one-word, CamelCase reason for the last transition."),
    "message": ("string", "Human-readable message about the last transition."),
}, required=("type", "status"))
_shape("HostIP", _CORE + "HostIP", "An IP address of a host.", {"ip": ("string", "The IP address.")},
       required=("ip",))
_shape("PodIP", _CORE + "PodIP", "An IP address of a pod.", {"ip": ("string", "The IP address.")},
       required=("ip",))
_shape("ContainerStatus", _CORE + "ContainerStatus", "The status of one container.", {
    "name": ("string", "The container's name."),
    "state": ("ContainerState", "The container's current condition."),
    "lastState": ("ContainerState", "The container's last termination condition."),
    "ready": ("boolean", "Whether the container passes its readiness probe."),
    "restartCount": ("int32", "How many times the container has been restarted."),
    "image": ("string", "The image the container runs."),
    "imageID": ("string", "The image's ID."),
    "containerID": ("string", "The container's ID, as <type>://<container_id>."),
    "started": ("boolean", "Whether the container finished starting (passed its startup probe)."),
    "allocatedResources": ("{}quantity", "Compute resources allocated to the container."),
    "resources": ("Resources", "Compute resources the runtime applies to the container."),
    "volumeMounts": ("[]object", "Status of the volume mounts."),
    "user": ("object", "The identity the container process runs with."),
    "stopSignal": ("string", "The signal that stops the container."),
}, required=("name", "ready", "restartCount", "image", "imageID"))
_shape("ContainerState", _CORE + "ContainerState", "The state of a container; at most one member set.", {
    "waiting": ("ContainerStateWaiting", "Details about a waiting container."),
    "running": ("ContainerStateRunning", "Details about a running container."),
    "terminated": ("ContainerStateTerminated", "Details about a terminated container."),
})
_shape("ContainerStateWaiting", _CORE + "ContainerStateWaiting", "A waiting container.", {
    "reason": ("string", "Why the container is not yet running."),
    "message": ("string", "Why the container is not yet running."),
})
_shape("ContainerStateRunning", _CORE + "ContainerStateRunning", "A running container.", {
    "startedAt": ("time", "When the container was last (re)started."),
})
_shape("ContainerStateTerminated", _CORE + "ContainerStateTerminated", "A terminated container.", {
    "exitCode": ("int32", "Exit status from the last termination of the container."),
    "signal": ("int32", "Signal from the last termination of the container."),
    "reason": ("string", "Brief reason from the last termination."),
    "message": ("string", "Message regarding the last termination."),
    "startedAt": ("time", "When the previous execution started."),
    "finishedAt": ("time", "When the container last terminated."),
    "containerID": ("string", "The container's ID, as <type>://<container_id>."),
}, required=("exitCode",))

# --- core: services and endpoints ------------------------------------------------------------------

_shape("ServiceSpec", _CORE + "ServiceSpec", "The attributes a user creates on a service.", {
    "ports": ("[]ServicePort", "The ports exposed by this service."),
    "selector": ("{}string", "Pods with labels matching this selector receive the service's traffic."),
    "clusterIP": ("string", "The IP address of the service, allocated at random; \"None\" for headless."),
    "clusterIPs": ("[]string", "The IP addresses of the service; the first equals clusterIP."),
    "type": ("string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    "externalIPs": ("[]string", "IP addresses for which nodes also accept traffic for this service."),
    "sessionAffinity": ("string", "ClientIP or None. Defaults to None."),
    "loadBalancerIP": ("string", "Deprecated: the address a load balancer should use."),
    "loadBalancerSourceRanges": ("[]string", "Client IP ranges a load balancer accepts."),
    "externalName": ("string", "The DNS name an ExternalName service is a CNAME for."),
    "externalTrafficPolicy": ("string", "Cluster or Local: how external traffic is routed."),
    "healthCheckNodePort": ("int32", "The health check node port of a LoadBalancer service."),
    "publishNotReadyAddresses": ("boolean", "Endpoints include pods that are not ready."),
    "sessionAffinityConfig": ("SessionAffinityConfig", "Configuration of session affinity."),
    "ipFamilies": ("[]string", "IP families (IPv4, IPv6) assigned to this service."),
    "ipFamilyPolicy": ("string", "SingleStack, PreferDualStack or RequireDualStack."),
    "allocateLoadBalancerNodePorts": ("boolean", "Whether a LoadBalancer service gets node ports."),
    "loadBalancerClass": ("string", "The class of the load balancer implementation."),
    "internalTrafficPolicy": ("string", "Cluster or Local: how in-cluster traffic is routed."),
    "trafficDistribution": ("string", "A preference for how traffic is distributed among endpoints."),
}, enums={
    "type": ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
    "sessionAffinity": ("ClientIP", "None"),
})
_shape("ServicePort", _CORE + "ServicePort", "A port the service exposes.", {
    "name": ("string", "The name of this port within the service; required with several ports."),
    "protocol": ("string", "The IP protocol for this port: TCP, UDP or SCTP. Defaults to TCP."),
    "appProtocol": ("string", "The application protocol for this port."),
    "port": ("int32", "The port exposed by this service."),
    "targetPort": ("intstr", "Number or name of the port to access on the pods. Defaults to port."),
    "nodePort": ("int32", "The port on each node on which this service is exposed (NodePort, "
                 "LoadBalancer)."),
}, required=("port",), enums={"protocol": _PROTOCOLS})
_shape("SessionAffinityConfig", _CORE + "SessionAffinityConfig", "Configuration of session affinity.", {
    "clientIP": ("ClientIPConfig", "Configuration of ClientIP based session affinity."),
})
_shape("ClientIPConfig", _CORE + "ClientIPConfig", "Configuration of ClientIP based session affinity.", {
    "timeoutSeconds": ("int32", "The seconds of ClientIP session sticky time. Defaults to 10800."),
})
_shape("ServiceStatus", _CORE + "ServiceStatus", "The current status of a service.", {
    "loadBalancer": ("LoadBalancerStatus", "The current status of the load balancer, if any."),
    "conditions": ("[]Condition", "Current service state."),
})
_shape("LoadBalancerStatus", _CORE + "LoadBalancerStatus", "The status of a load balancer.", {
    "ingress": ("[]LoadBalancerIngress", "Ingress points of the load balancer."),
})
_shape("LoadBalancerIngress", _CORE + "LoadBalancerIngress", "An ingress point of a load balancer.", {
    "ip": ("string", "IP-based ingress point."),
    "hostname": ("string", "DNS-based ingress point."),
    "ipMode": ("string", "How the load balancer's IP behaves: VIP or Proxy."),
    "ports": ("[]object", "Records of service ports."),
})
_shape("Subset", _CORE + "EndpointSubset", "A group of addresses with a common set of ports.", {
    "addresses": ("[]Address", "IP addresses which offer the related ports and are ready."),
    "notReadyAddresses": ("[]Address", "IP addresses which offer the related ports but are not ready."),
    "ports": ("[]EndpointPort", "Port numbers available on the related IP addresses."),
})
_shape("Address", _CORE + "EndpointAddress", "A single IP address of an endpoint.", {
    "ip": ("string", "The IP of this endpoint."),
    "hostname": ("string", "The hostname of this endpoint."),
    "nodeName": ("string", "The node hosting this endpoint."),
    "targetRef": ("ObjectReference", "Reference to the object providing the endpoint."),
}, required=("ip",))
_shape("EndpointPort", _CORE + "EndpointPort", "A port used by an endpoint.", {
    "name": ("string", "The name of this port; must match the ServicePort's name."),
    "port": ("int32", "The port number of the endpoint."),
    "protocol": ("string", "The IP protocol for this port: TCP, UDP or SCTP. Defaults to TCP."),
    "appProtocol": ("string", "The application protocol for this port."),
}, required=("port",), enums={"protocol": _PROTOCOLS})

# --- core: namespaces, nodes, quotas, limits, events ----------------------------------------------

_shape("NamespaceSpec", _CORE + "NamespaceSpec", "The attributes of a namespace.", {
    "finalizers": ("[]string", "Must be empty before the namespace is removed from storage."),
})
_shape("NamespaceStatus", _CORE + "NamespaceStatus", "The current status of a namespace.", {
    "phase": ("string", "Active or Terminating."),
    "conditions": ("[]NamespaceCondition", "The latest available observations of the namespace's state."),
})
_shape("NamespaceCondition", _CORE + "NamespaceCondition", "The state of a namespace at a point.", {
    "type": ("string", "Type of namespace controller condition."),
    "status": ("string", "True, False or Unknown."),
    "lastTransitionTime": ("time", "Last time the condition changed status."),
    "reason": ("string", "Reason for the last transition."),
    "message": ("string", "Human-readable message about the last transition."),
}, required=("type", "status"))
_shape("NodeSpec", _CORE + "NodeSpec", "The attributes a node is created with.", {
    "podCIDR": ("string", "The pod IP range assigned to the node."),
    "podCIDRs": ("[]string", "The pod IP ranges assigned to the node; the first equals podCIDR."),
    "providerID": ("string", "ID of the node assigned by the cloud provider."),
    "unschedulable": ("boolean", "Whether new pods may not be scheduled on the node (cordoned)."),
    "taints": ("[]Taint", "The node's taints."),
    "configSource": ("object", "Deprecated: dynamic kubelet configuration."),
    "externalID": ("string", "Deprecated; not used."),
})
_shape("Taint", _CORE + "Taint", "A node's mark that repels pods which do not tolerate it.", {
    "key": ("string", "The taint key to be applied to a node."),
    "value": ("string", "The taint value corresponding to the taint key."),
    "effect": ("string", "NoSchedule, PreferNoSchedule or NoExecute."),
    "timeAdded": ("time", "When the taint was added; only for NoExecute taints."),
}, required=("key", "effect"), enums={"effect": ("NoExecute", "NoSchedule", "PreferNoSchedule")})
_shape("NodeStatus", _CORE + "NodeStatus", "The most recently observed status of a node.", {
    "capacity": ("{}quantity", "The total resources of the node."),
    "allocatable": ("{}quantity", "The resources of the node available for scheduling."),
    "phase": ("string", "Deprecated: the lifecycle phase of the node."),
    "conditions": ("[]NodeCondition", "Current observed node conditions."),
    "addresses": ("[]NodeAddress", "Addresses reachable to the node."),
    "daemonEndpoints": ("NodeDaemonEndpoints", "Endpoints of daemons running on the node."),
    "nodeInfo": ("NodeSystemInfo", "General information about the node."),
    "images": ("[]object", "Container images on the node."),
    "volumesInUse": ("[]string", "Volumes in use (mounted) by the node."),
    "volumesAttached": ("[]object", "Volumes attached to the node."),
    "config": ("object", "Status of the node's dynamic configuration."),
    "runtimeHandlers": ("[]object", "The available runtime handlers."),
    "features": ("object", "Features of the node's runtime."),
})
_shape("NodeCondition", _CORE + "NodeCondition", "The condition of a node.", {
    "type": ("string", "Type of node condition: Ready, MemoryPressure, ..."),
    "status": ("string", "True, False or Unknown."),
    "lastHeartbeatTime": ("time", "Last time the condition was reported."),
    "lastTransitionTime": ("time", "Last time the condition changed status."),
    "reason": ("string", "Reason for the last transition."),
    "message": ("string", "Human-readable message about the last transition."),
}, required=("type", "status"))
_shape("NodeAddress", _CORE + "NodeAddress", "An address of a node.", {
    "type": ("string", "Hostname, ExternalIP or InternalIP."),
    "address": ("string", "The node address."),
}, required=("type", "address"))
_shape("NodeDaemonEndpoints", _CORE + "NodeDaemonEndpoints", "Ports of daemons on a node.", {
    "kubeletEndpoint": ("DaemonEndpoint", "The port the node agent listens on."),
})
_shape("DaemonEndpoint", _CORE + "DaemonEndpoint", "A port of a daemon.", {
    "Port": ("int32", "Port number of the given endpoint."),
}, required=("Port",))
_shape("NodeSystemInfo", _CORE + "NodeSystemInfo", "Identifying information about a node.", {
    "machineID": ("string", "The machine ID reported by the node."),
    "systemUUID": ("string", "The system UUID reported by the node."),
    "bootID": ("string", "The boot ID reported by the node."),
    "kernelVersion": ("string", "Kernel version reported by uname -r."),
    "osImage": ("string", "OS image reported by the node from /etc/os-release."),
    "containerRuntimeVersion": ("string", "Container runtime version, as <runtime>://<version>."),
    "kubeletVersion": ("string", "Node agent version."),
    "kubeProxyVersion": ("string", "Deprecated: proxy version."),
    "operatingSystem": ("string", "The operating system reported by the node."),
    "architecture": ("string", "The architecture reported by the node."),
    "swap": ("object", "Swap information of the node."),
}, required=("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
             "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture"))
_shape("QuotaSpec", _CORE + "ResourceQuotaSpec", "The desired hard limits to enforce for a quota.", {
    "hard": ("{}quantity", "The desired hard limit for each named resource."),
    "scopes": ("[]string", "Filters on the objects the quota tracks."),
    "scopeSelector": ("ScopeSelector", "Filters on the objects the quota tracks, as expressions."),
})
_shape("ScopeSelector", _CORE + "ScopeSelector", "A selector of quota scopes.", {
    "matchExpressions": ("[]ScopedResourceSelectorRequirement", "Requirements by resource scope."),
})
_shape("ScopedResourceSelectorRequirement", _CORE + "ScopedResourceSelectorRequirement", "A scope "
       "selector requirement.", {
    "scopeName": ("string", "The name of the scope that the selector applies to."),
    "operator": ("string", "In, NotIn, Exists or DoesNotExist."),
    "values": ("[]string", "An array of string values."),
}, required=("scopeName", "operator"))
_shape("ResourceQuotaStatus", _CORE + "ResourceQuotaStatus", "The enforced hard limits and observed use.", {
    "hard": ("{}quantity", "The enforced hard limits for each named resource."),
    "used": ("{}quantity", "The current observed total usage of the resource in the namespace."),
})
_shape("LimitRangeSpec", _CORE + "LimitRangeSpec", "Limits enforced on objects of a namespace.", {
    "limits": ("[]LimitRangeItem", "The limits that are enforced."),
}, required=("limits",))
_shape("LimitRangeItem", _CORE + "LimitRangeItem", "Min/max limits for a kind of object.", {
    "type": ("string", "Type of resource that this limit applies to: Pod, Container or "
             "PersistentVolumeClaim."),
    "max": ("{}quantity", "Max usage constraints on this kind by resource name."),
    "min": ("{}quantity", "Min usage constraints on this kind by resource name."),
    "default": ("{}quantity", "Default resource limits when none are given."),
    "defaultRequest": ("{}quantity", "Default resource requests when none are given."),
    "maxLimitRequestRatio": ("{}quantity", "Maximum ratio of limit to request per resource."),
}, required=("type",))
_shape("EventSource", _CORE + "EventSource", "The source of an event.", {
    "component": ("string", "Component from which the event is generated."),
    "host": ("string", "Node name on which the event is generated."),
})
_shape("EventSeries", _CORE + "EventSeries", "A series of events that happened repeatedly.", {
    "count": ("int32", "Number of occurrences in this series up to the last heartbeat time."),
    "lastObservedTime": ("microtime", "Time of the last occurrence observed."),
})

# --- apps ------------------------------------------------------------------------------------------

_shape("RCSpec", _CORE + "ReplicationControllerSpec", "The desired state of a replication controller.", {
    "replicas": ("int32", "The number of desired replicas. Defaults to 1."),
    "minReadySeconds": ("int32", "Seconds a new pod must be ready to count as available."),
    "selector": ("{}string", "Label query over the pods that should match the replica count; defaults "
                 "to the template's labels."),
    "template": ("PodTemplate", "The pod created when too few replicas are found."),
})
_shape("ReplicationControllerStatus", _CORE + "ReplicationControllerStatus", "The current status of a "
       "replication controller.", {
    "replicas": ("int32", "The most recently observed number of replicas."),
    "fullyLabeledReplicas": ("int32", "The number of pods that have labels matching the template's."),
    "readyReplicas": ("int32", "The number of ready replicas."),
    "availableReplicas": ("int32", "The number of available replicas (ready for minReadySeconds)."),
    "observedGeneration": ("int64", "The generation this status reflects."),
    "conditions": ("[]WorkloadCondition", "The latest observations of the controller's state."),
}, required=("replicas",))
_shape("WorkloadCondition", _APPS + "ReplicaSetCondition", "The state of a replica set or replication "
       "controller at a point.", {
    "type": ("string", "Type of the condition."),
    "status": ("string", "True, False or Unknown."),
    "lastTransitionTime": ("time", "The last time the condition transitioned."),
    "reason": ("string", "The reason for the condition's last transition."),
    "message": ("string", "A human readable message about the transition."),
}, required=("type", "status"))
_shape("RSSpec", _APPS + "ReplicaSetSpec", "The desired state of a replica set.", {
    "replicas": ("int32", "The number of desired pods. Defaults to 1."),
    "minReadySeconds": ("int32", "Seconds a new pod must be ready to count as available."),
    "selector": ("LabelSelector", "A label query over pods that should match the replica count."),
    "template": ("PodTemplate", "The pod created when too few replicas are found."),
}, required=("selector",))
_shape("ReplicaSetStatus", _APPS + "ReplicaSetStatus", "The current status of a replica set.", {
    "replicas": ("int32", "The most recently observed number of replicas."),
    "fullyLabeledReplicas": ("int32", "The number of pods that have labels matching the template's."),
    "readyReplicas": ("int32", "The number of ready replicas."),
    "availableReplicas": ("int32", "The number of available replicas (ready for minReadySeconds)."),
    "terminatingReplicas": ("int32", "The number of terminating pods."),
    "observedGeneration": ("int64", "The generation this status reflects."),
    "conditions": ("[]WorkloadCondition", "The latest observations of the replica set's state."),
}, required=("replicas",))
_shape("DeploymentSpec", _APPS + "DeploymentSpec", "The desired behaviour of a deployment.", {
    "replicas": ("int32", "Number of desired pods. Defaults to 1."),
    "selector": ("LabelSelector", "Label selector for the pods; must match the template's labels."),
    "template": ("PodTemplate", "Template describes the pods that will be created."),
    "strategy": ("Strategy", "How existing pods are replaced with new ones."),
    "minReadySeconds": ("int32", "Seconds a new pod must be ready to count as available."),
    "revisionHistoryLimit": ("int32", "The number of old ReplicaSets kept for rollback. Defaults to 10."),
    "paused": ("boolean", "Whether the deployment is paused."),
    "progressDeadlineSeconds": ("int32", "Seconds for the deployment to make progress before it is "
                                "considered failed. Defaults to 600."),
}, required=("selector", "template"))
_shape("Strategy", _APPS + "DeploymentStrategy", "How to replace existing pods with new ones.", {
    "type": ("string", "Recreate or RollingUpdate. Defaults to RollingUpdate."),
    "rollingUpdate": ("RollingUpdate", "Rolling update config; only with type RollingUpdate."),
}, enums={"type": ("Recreate", "RollingUpdate")})
_shape("RollingUpdate", _APPS + "RollingUpdateDeployment", "Controls a rolling update.", {
    "maxUnavailable": ("intstr", "The maximum number (or percentage) of unavailable pods during the "
                       "update. Defaults to 25%."),
    "maxSurge": ("intstr", "The maximum number (or percentage) of pods above the desired count. "
                 "Defaults to 25%."),
})
_shape("DeploymentStatus", _APPS + "DeploymentStatus", "The most recently observed status of a "
       "deployment.", {
    "observedGeneration": ("int64", "The generation observed by the deployment controller."),
    "replicas": ("int32", "Total number of non-terminated pods targeted by this deployment."),
    "updatedReplicas": ("int32", "Pods that have the desired template spec."),
    "readyReplicas": ("int32", "Pods with a Ready condition."),
    "availableReplicas": ("int32", "Pods available (ready for at least minReadySeconds)."),
    "unavailableReplicas": ("int32", "Pods still required for the deployment to be fully available."),
    "terminatingReplicas": ("int32", "Terminating pods of this deployment."),
    "conditions": ("[]DeploymentCondition", "The latest observations of the deployment's state."),
    "collisionCount": ("int32", "Count of hash collisions of the deployment's ReplicaSets."),
})
_shape("HPASpec", _AUTOSCALING + "HorizontalPodAutoscalerSpec", "The desired behaviour of an autoscaler.", {
    "scaleTargetRef": ("HPATargetRef", "The scaled resource (Deployment, ReplicaSet, ReplicationController, ...)."),
    "minReplicas": ("int32", "The lower limit of replicas. Defaults to 1."),
    "maxReplicas": ("int32", "The upper limit of replicas; at least minReplicas."),
    "metrics": ("[]HPAMetric", "Metrics to scale on; nbkube serves Resource metrics (cpu, memory). Default: cpu 80%."),
    "behavior": ("HPABehavior", "Scale-up and scale-down stabilization windows and rate policies."),
}, required=("scaleTargetRef", "maxReplicas"))
_shape("HPATargetRef", _AUTOSCALING + "CrossVersionObjectReference", "A reference to the scaled object.", {
    "kind": ("string", "Kind of the referent."),
    "name": ("string", "Name of the referent."),
    "apiVersion": ("string", "API version of the referent."),
}, required=("kind", "name"))
_shape("HPAMetric", _AUTOSCALING + "MetricSpec", "One metric to scale on.", {
    "type": ("string", "Resource (served by nbkube); Pods, Object, External and ContainerResource are refused."),
    "resource": ("HPAResourceMetric", "A resource of each pod (cpu or memory), as in its requests."),
    "pods": ("object", "Not served by nbkube."),
    "object": ("object", "Not served by nbkube."),
    "external": ("object", "Not served by nbkube."),
    "containerResource": ("object", "Not served by nbkube."),
}, required=("type",))
_shape("HPAResourceMetric", _AUTOSCALING + "ResourceMetricSource", "A resource metric's name and target.", {
    "name": ("string", "cpu or memory."),
    "target": ("HPAMetricTarget", "The value the autoscaler keeps the metric near."),
}, required=("name", "target"))
_shape("HPAMetricTarget", _AUTOSCALING + "MetricTarget", "A target for a metric.", {
    "type": ("string", "Utilization (percent of the request) or AverageValue (per pod)."),
    "averageUtilization": ("int32", "Target percentage of the pods' requests."),
    "averageValue": ("quantity", "Target value per pod."),
    "value": ("quantity", "Target value of the whole metric (not for Resource metrics)."),
}, required=("type",))
_shape("HPABehavior", _AUTOSCALING + "HorizontalPodAutoscalerBehavior", "Scaling rules for both directions.", {
    "scaleUp": ("HPAScalingRules", "Rules for scaling up; default: no window, +4 pods or +100% per 15 s."),
    "scaleDown": ("HPAScalingRules", "Rules for scaling down; default: a 300 s window, -100% per 15 s."),
})
_shape("HPAScalingRules", _AUTOSCALING + "HPAScalingRules", "A stabilization window and rate policies.", {
    "stabilizationWindowSeconds": ("int32", "Recommendations of this many past seconds bound the new one (0-3600)."),
    "selectPolicy": ("string", "Max, Min or Disabled: which policy's limit applies."),
    "policies": ("[]HPAScalingPolicy", "Limits on the change per period."),
})
_shape("HPAScalingPolicy", _AUTOSCALING + "HPAScalingPolicy", "A limit on the change of replicas in a period.", {
    "type": ("string", "Pods or Percent."),
    "value": ("int32", "How many pods, or what percentage of the replicas at the period's start."),
    "periodSeconds": ("int32", "The period the limit applies to (1-1800)."),
}, required=("type", "value", "periodSeconds"))
_shape("DeploymentCondition", _APPS + "DeploymentCondition", "The state of a deployment at a point.", {
    "type": ("string", "Type of deployment condition: Available, Progressing or ReplicaFailure."),
    "status": ("string", "True, False or Unknown."),
    "lastUpdateTime": ("time", "The last time this condition was updated."),
    "lastTransitionTime": ("time", "Last time the condition transitioned."),
    "reason": ("string", "The reason for the condition's last transition."),
    "message": ("string", "A human readable message about the transition."),
}, required=("type", "status"))

_shape("DaemonSetSpec", _APPS + "DaemonSetSpec", "The desired behaviour of a daemon set.", {
    "selector": ("LabelSelector", "Label selector for the pods; must match the template's labels."),
    "template": ("PodTemplate", "The pod run on every eligible node."),
    "updateStrategy": ("DaemonSetUpdateStrategy", "How old pods are replaced when the template changes."),
    "minReadySeconds": ("int32", "Seconds a new pod must be ready to count as available."),
    "revisionHistoryLimit": ("int32", "The number of old history entries kept. Defaults to 10."),
}, required=("selector", "template"))
_shape("DaemonSetUpdateStrategy", _APPS + "DaemonSetUpdateStrategy", "How a daemon set replaces its pods.", {
    "type": ("string", "RollingUpdate or OnDelete. Defaults to RollingUpdate."),
    "rollingUpdate": ("RollingUpdateDaemonSet", "Rolling update config; only with type RollingUpdate."),
}, enums={"type": ("OnDelete", "RollingUpdate")})
_shape("RollingUpdateDaemonSet", _APPS + "RollingUpdateDaemonSet", "Controls a daemon set's rolling update.", {
    "maxUnavailable": ("intstr", "Nodes (number or percentage) whose daemon pod may be unavailable during "
                       "the update. Defaults to 1."),
    "maxSurge": ("intstr", "Nodes (number or percentage) that may run an updated pod beside the old one "
                 "during the update. Defaults to 0."),
})
_shape("DaemonSetStatus", _APPS + "DaemonSetStatus", "The observed state of a daemon set.", {
    "currentNumberScheduled": ("int32", "Nodes running at least one daemon pod that should run it."),
    "numberMisscheduled": ("int32", "Nodes running the daemon pod that should not run it."),
    "desiredNumberScheduled": ("int32", "Nodes that should run the daemon pod."),
    "numberReady": ("int32", "Nodes that should run the daemon pod and have one Ready."),
    "observedGeneration": ("int64", "The generation observed by the daemon set controller."),
    "updatedNumberScheduled": ("int32", "Nodes running the updated daemon pod."),
    "numberAvailable": ("int32", "Nodes with the daemon pod available (ready for minReadySeconds)."),
    "numberUnavailable": ("int32", "Nodes that should run the daemon pod and have none available."),
    "collisionCount": ("int32", "Count of hash collisions of the daemon set."),
    "conditions": ("[]WorkloadCondition", "The latest observations of the daemon set's state."),
}, required=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"))
_shape("PDBSpec", _POLICY + "PodDisruptionBudgetSpec", "The desired state of a disruption budget.", {
    "minAvailable": ("intstr", "Pods that must stay available after an eviction (number or percent)."),
    "maxUnavailable": ("intstr", "Pods that may be unavailable after an eviction (number or percent)."),
    "selector": ("LabelSelector", "The pods the budget covers; an empty selector covers every pod."),
    "unhealthyPodEvictionPolicy": ("string", "IfHealthyBudget or AlwaysAllow: when unhealthy pods may be "
                                   "evicted."),
}, enums={"unhealthyPodEvictionPolicy": ("AlwaysAllow", "IfHealthyBudget")})
_shape("PDBStatus", _POLICY + "PodDisruptionBudgetStatus", "The observed state of a disruption budget.", {
    "observedGeneration": ("int64", "The generation observed when this status was written."),
    "disruptedPods": ("{}time", "Pods evicted but not yet seen deleted, with the eviction time."),
    "disruptionsAllowed": ("int32", "Pod disruptions currently allowed."),
    "currentHealthy": ("int32", "Current number of healthy pods."),
    "desiredHealthy": ("int32", "Minimum desired number of healthy pods."),
    "expectedPods": ("int32", "Total number of pods counted by this budget."),
    "conditions": ("[]Condition", "DisruptionAllowed: whether an eviction would be allowed now."),
}, required=("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"))

# --- networking, coordination, rbac ----------------------------------------------------------------

_shape("NetworkPolicySpec", _NET + "NetworkPolicySpec", "The desired state of a network policy.", {
    "podSelector": ("LabelSelector", "The pods this policy applies to; empty selects all pods of the "
                    "namespace."),
    "ingress": ("[]IngressRule", "Allowed ingress traffic; ORed."),
    "egress": ("[]EgressRule", "Allowed egress traffic; ORed."),
    "policyTypes": ("[]string", "Ingress, Egress or both: the directions this policy isolates."),
})
_shape("IngressRule", _NET + "NetworkPolicyIngressRule", "Traffic allowed to the selected pods.", {
    "ports": ("[]NetworkPolicyPort", "Ports reachable; all ports when empty."),
    "from": ("[]Peer", "Sources allowed; all sources when empty."),
})
_shape("EgressRule", _NET + "NetworkPolicyEgressRule", "Traffic allowed from the selected pods.", {
    "ports": ("[]NetworkPolicyPort", "Destination ports allowed; all ports when empty."),
    "to": ("[]Peer", "Destinations allowed; all destinations when empty."),
})
_shape("Peer", _NET + "NetworkPolicyPeer", "A peer to allow traffic to or from.", {
    "podSelector": ("LabelSelector", "Selects pods (in the policy's namespace unless namespaceSelector "
                    "is set)."),
    "namespaceSelector": ("LabelSelector", "Selects namespaces."),
    "ipBlock": ("IPBlock", "A particular IP range."),
})
_shape("IPBlock", _NET + "IPBlock", "A particular CIDR allowed to or from the selected pods.", {
    "cidr": ("string", "The IP block, e.g. 192.168.1.0/24."),
    "except": ("[]string", "CIDRs excluded from the block."),
}, required=("cidr",))
_shape("NetworkPolicyPort", _NET + "NetworkPolicyPort", "A port to allow traffic on.", {
    "protocol": ("string", "TCP, UDP or SCTP. Defaults to TCP."),
    "port": ("intstr", "The port, by number or named port of the pod; all ports when empty."),
    "endPort": ("int32", "The last port of a range starting at port."),
}, enums={"protocol": _PROTOCOLS})
_shape("LeaseSpec", _COORD + "LeaseSpec", "The specification of a lease.", {
    "holderIdentity": ("string", "The identity of the holder of the lease."),
    "leaseDurationSeconds": ("int32", "Seconds candidates wait before forcing an acquisition."),
    "acquireTime": ("microtime", "When the current lease was acquired."),
    "renewTime": ("microtime", "When the current holder last renewed the lease."),
    "leaseTransitions": ("int32", "Number of transitions of the lease between holders."),
    "strategy": ("string", "The strategy for picking the leader in coordinated leader election."),
    "preferredHolder": ("string", "The holder the lease should move to."),
})
_shape("PolicyRule", _RBAC + "PolicyRule", "Actions permitted on resources or non-resource URLs.", {
    "verbs": ("[]string", "Verbs that apply to the rule; '*' is all verbs."),
    "apiGroups": ("[]string", "API groups of the resources; \"\" is the core group, '*' all groups."),
    "resources": ("[]string", "Resources the rule applies to; '*' is all resources."),
    "resourceNames": ("[]string", "An optional allow list of object names."),
    "nonResourceURLs": ("[]string", "Partial URLs a user may access (e.g. /healthz); only in "
                        "ClusterRoles."),
}, required=("verbs",))
_shape("AggregationRule", _RBAC + "AggregationRule", "How to build a ClusterRole from others.", {
    "clusterRoleSelectors": ("[]LabelSelector", "ClusterRoles whose rules are aggregated."),
})
_shape("Subject", _RBAC + "Subject", "A user, group or service account a binding grants to.", {
    "kind": ("string", "User, Group or ServiceAccount."),
    "apiGroup": ("string", "\"\" for ServiceAccount, rbac.authorization.k8s.io for User and Group."),
    "name": ("string", "Name of the subject."),
    "namespace": ("string", "Namespace of a ServiceAccount subject."),
}, required=("kind", "name"))
_shape("RoleRef", _RBAC + "RoleRef", "The role a binding grants.", {
    "apiGroup": ("string", "The group of the referenced role: rbac.authorization.k8s.io."),
    "kind": ("string", "Role or ClusterRole."),
    "name": ("string", "Name of the role."),
}, required=("apiGroup", "kind", "name"))

# --- the kinds -------------------------------------------------------------------------------------


def _kind(
    kind: str, model: str, description: str, fields: dict[str, tuple[str, str]], required: tuple[str, ...] = ()
) -> None:
    _shape(kind, model, description, {"apiVersion": _API_VERSION, "kind": _KIND, "metadata": _METADATA,
                                      **fields}, required)


_SPEC = "Desired state of the object."
_STATUS = "Most recently observed status of the object; read-only."
_kind("Pod", _CORE + "Pod", "A collection of containers that can run on a host.", {
    "spec": ("PodSpec", "Specification of the desired behaviour of the pod."),
    "status": ("PodStatus", _STATUS),
})
_kind("Service", _CORE + "Service", "A named abstraction of a software service: a local port that "
      "the proxy listens on, and the selector that determines which pods answer.", {
    "spec": ("ServiceSpec", "Spec defines the behaviour of a service."),
    "status": ("ServiceStatus", _STATUS),
})
_kind("ReplicationController", _CORE + "ReplicationController", "Keeps a number of pod replicas "
      "running.", {
    "spec": ("RCSpec", _SPEC),
    "status": ("ReplicationControllerStatus", _STATUS),
})
_kind("ReplicaSet", _APPS + "ReplicaSet", "Ensures that a specified number of pod replicas are running.", {
    "spec": ("RSSpec", _SPEC),
    "status": ("ReplicaSetStatus", _STATUS),
})
_kind("Deployment", _APPS + "Deployment", "Declarative updates for pods and ReplicaSets.", {
    "spec": ("DeploymentSpec", _SPEC),
    "status": ("DeploymentStatus", _STATUS),
})
_kind("DaemonSet", _APPS + "DaemonSet", "Runs a copy of a pod on every eligible node.", {
    "spec": ("DaemonSetSpec", _SPEC),
    "status": ("DaemonSetStatus", _STATUS),
})
_kind("ControllerRevision", _APPS + "ControllerRevision", "An immutable snapshot of state a controller "
      "keeps to roll back to (a DaemonSet's or StatefulSet's pod template).", {
    "data": ("object", "The serialized state (a patch that restores it)."),
    "revision": ("int64", "The revision number of the state in data."),
}, required=("revision",))
_kind("PodDisruptionBudget", _POLICY + "PodDisruptionBudget", "The most disruption a set of pods may "
      "take at once from evictions.", {
    "spec": ("PDBSpec", _SPEC),
    "status": ("PDBStatus", _STATUS),
})
_kind("HorizontalPodAutoscaler", _AUTOSCALING + "HorizontalPodAutoscaler", "Scales a workload's replicas "
      "to keep a resource metric near its target.", {
    "spec": ("HPASpec", _SPEC),
    "status": ("object", "currentReplicas, desiredReplicas, currentMetrics, conditions, lastScaleTime."),
})
_kind("Namespace", _CORE + "Namespace", "A scope for names.", {
    "spec": ("NamespaceSpec", _SPEC),
    "status": ("NamespaceStatus", _STATUS),
})
_kind("Node", _CORE + "Node", "A worker node.", {
    "spec": ("NodeSpec", _SPEC),
    "status": ("NodeStatus", _STATUS),
})
_kind("Endpoints", _CORE + "Endpoints", "The endpoints that implement a service.", {
    "subsets": ("[]Subset", "Sets of addresses and ports of the service."),
})
_kind("ConfigMap", _CORE + "ConfigMap", "Configuration data for pods to consume.", {
    "data": ("{}string", "Configuration data as UTF-8 strings."),
    "binaryData": ("{}byte", "Binary configuration data, base64 encoded."),
    "immutable": ("boolean", "If true, the data cannot be changed after creation."),
})
_kind("Secret", _CORE + "Secret", "Secret data of a certain type; values are base64 encoded.", {
    "data": ("{}byte", "The secret data, base64 encoded."),
    "stringData": ("{}string", "Write-only convenience: plain strings merged into data on write."),
    "type": ("string", "Used to facilitate programmatic handling of secret data. Defaults to Opaque."),
    "immutable": ("boolean", "If true, the data cannot be changed after creation."),
})
_kind("ServiceAccount", _CORE + "ServiceAccount", "An identity for processes that run in a pod.", {
    "secrets": ("[]ObjectReference", "Secrets pods running as this account may use."),
    "imagePullSecrets": ("[]LocalObjectReference", "Secrets for pulling the images of pods that "
                         "reference this account."),
    "automountServiceAccountToken": ("boolean", "Whether pods running as this account get an API token "
                                     "mounted."),
})
_kind("ResourceQuota", _CORE + "ResourceQuota", "Aggregate quota restrictions of a namespace.", {
    "spec": ("QuotaSpec", _SPEC),
    "status": ("ResourceQuotaStatus", _STATUS),
})
_kind("LimitRange", _CORE + "LimitRange", "Resource consumption limits per kind in a namespace.", {
    "spec": ("LimitRangeSpec", _SPEC),
})
_kind("NetworkPolicy", _NET + "NetworkPolicy", "What network traffic is allowed for a set of pods.", {
    "spec": ("NetworkPolicySpec", _SPEC),
    "status": ("object", "Not used; kept for compatibility with older versions of the kind."),
})
_kind("Event", _CORE + "Event", "A report of an event somewhere in the cluster.", {
    "involvedObject": ("ObjectReference", "The object this event is about."),
    "reason": ("string", "A short, machine understandable reason for the transition."),
    "message": ("string", "A human-readable description of the status of this operation."),
    "source": ("EventSource", "The component reporting this event."),
    "firstTimestamp": ("time", "The time the event was first recorded."),
    "lastTimestamp": ("time", "The time of the most recent occurrence."),
    "count": ("int32", "The number of times this event has occurred."),
    "type": ("string", "Normal or Warning."),
    "eventTime": ("microtime", "Time when this event was first observed."),
    "series": ("EventSeries", "Data about the event series this event represents."),
    "action": ("string", "What action was taken or failed regarding the object."),
    "related": ("ObjectReference", "Optional secondary object for more complex actions."),
    "reportingComponent": ("string", "Name of the controller that emitted this event."),
    "reportingInstance": ("string", "ID of the controller instance."),
}, required=("metadata", "involvedObject"))
_kind("Lease", _COORD + "Lease", "A lease concept.", {"spec": ("LeaseSpec", _SPEC)})
_shape("Endpoint", _DISC + "Endpoint", "One endpoint of a service.", {
    "addresses": ("[]string", "The addresses of this endpoint (one, for the pod's IP)."),
    "conditions": ("EndpointConditions", "The current state of the endpoint."),
    "hostname": ("string", "The hostname of this endpoint (a pod's hostname under its subdomain)."),
    "targetRef": ("ObjectReference", "The object providing the endpoint."),
    "nodeName": ("string", "The node hosting this endpoint."),
    "zone": ("string", "The zone this endpoint exists in."),
    "hints": ("object", "Information about how the endpoint should be consumed."),
    "deprecatedTopology": ("{}string", "Deprecated topology information."),
}, required=("addresses",))
_shape("EndpointConditions", _DISC + "EndpointConditions", "The current condition of an endpoint.", {
    "ready": ("boolean", "The endpoint is ready to receive traffic."),
    "serving": ("boolean", "The endpoint is serving (ready, or terminating but still able to serve)."),
    "terminating": ("boolean", "The endpoint is terminating."),
})
_kind("EndpointSlice", _DISC + "EndpointSlice", "A subset of the endpoints of a service.", {
    "addressType": ("string", "The type of address carried: IPv4, IPv6 or FQDN."),
    "endpoints": ("[]Endpoint", "The unique endpoints in this slice (at most 1000)."),
    "ports": ("[]EndpointPort", "The network ports exposed by each endpoint of this slice."),
}, required=("addressType", "endpoints"))
_kind("Role", _RBAC + "Role", "A namespaced, logical grouping of PolicyRules.", {
    "rules": ("[]PolicyRule", "All the PolicyRules of this Role."),
})
_kind("ClusterRole", _RBAC + "ClusterRole", "A cluster level, logical grouping of PolicyRules.", {
    "rules": ("[]PolicyRule", "All the PolicyRules of this ClusterRole."),
    "aggregationRule": ("AggregationRule", "How to build the rules of this ClusterRole from others."),
})
_kind("RoleBinding", _RBAC + "RoleBinding", "Grants the permissions of a Role or ClusterRole within a "
      "namespace.", {
    "subjects": ("[]Subject", "The subjects the role applies to."),
    "roleRef": ("RoleRef", "A Role in the namespace or a ClusterRole."),
}, required=("roleRef",))
_kind("ClusterRoleBinding", _RBAC + "ClusterRoleBinding", "Grants the permissions of a ClusterRole "
      "cluster-wide.", {
    "subjects": ("[]Subject", "The subjects the role applies to."),
    "roleRef": ("RoleRef", "A ClusterRole."),
}, required=("roleRef",))

schemas_storage.register(_shape, _kind)
schemas_batch.register(_shape, _kind)

# kind -> the shape of its objects (the kinds are shapes named after themselves)
KIND_SHAPES: dict[str, str] = {
    name: name for name, shape in SHAPES.items() if "kind" in shape.fields and "metadata" in shape.fields
}
