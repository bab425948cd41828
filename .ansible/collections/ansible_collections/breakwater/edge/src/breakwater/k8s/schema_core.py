"""The schema table (see :mod:`.schema`): meta/v1 and core/v1."""

from __future__ import annotations

from breakwater.k8s.fields import Field
from breakwater.k8s.fields import fields as _fields

MESSAGES: dict[str, tuple[Field, ...]] = {
    # --- meta/v1 ---------------------------------------------------------------
    "ObjectMeta": _fields(
        ("name", 1, "string"),
        ("generateName", 2, "string"),
        ("namespace", 3, "string"),
        ("selfLink", 4, "string"),
        ("uid", 5, "string"),
        ("resourceVersion", 6, "string"),
        ("generation", 7, "int64"),
        ("creationTimestamp", 8, "Time"),
        ("deletionTimestamp", 9, "Time", "p"),
        ("deletionGracePeriodSeconds", 10, "int64", "p"),
        ("labels", 11, "{string}"),
        ("annotations", 12, "{string}"),
        ("ownerReferences", 13, "[]OwnerReference"),
        ("finalizers", 14, "[]string"),
        ("managedFields", 17, "[]ManagedFieldsEntry"),
    ),
    "OwnerReference": _fields(
        ("apiVersion", 5, "string", "k"),
        ("kind", 1, "string", "k"),
        ("name", 3, "string", "k"),
        ("uid", 4, "string", "k"),
        ("controller", 6, "bool", "p"),
        ("blockOwnerDeletion", 7, "bool", "p"),
    ),
    "ManagedFieldsEntry": _fields(
        ("manager", 1, "string"),
        ("operation", 2, "string"),
        ("apiVersion", 3, "string"),
        ("time", 4, "Time", "p"),
        ("fieldsType", 6, "string"),
        ("fieldsV1", 7, "FieldsV1", "p"),
        ("subresource", 8, "string"),
    ),
    "Condition": _fields(
        ("type", 1, "string", "k"),
        ("status", 2, "string", "k"),
        ("observedGeneration", 3, "int64"),
        ("lastTransitionTime", 4, "Time", "k"),
        ("reason", 5, "string", "k"),
        ("message", 6, "string", "k"),
    ),
    # --- core/v1: shared -------------------------------------------------------
    "ObjectReference": _fields(
        ("kind", 1, "string"),
        ("namespace", 2, "string"),
        ("name", 3, "string"),
        ("uid", 4, "string"),
        ("apiVersion", 5, "string"),
        ("resourceVersion", 6, "string"),
        ("fieldPath", 7, "string"),
    ),
    "PortStatus": _fields(
        ("port", 1, "int32", "k"),
        ("protocol", 2, "string", "k"),
        ("error", 3, "string", "p"),
    ),
    # --- core/v1 Service -------------------------------------------------------
    "Service": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("spec", 2, "ServiceSpec"),
        ("status", 3, "ServiceStatus"),
    ),
    "ServiceSpec": _fields(
        ("ports", 1, "[]ServicePort"),
        ("selector", 2, "{string}"),
        ("clusterIP", 3, "string"),
        ("clusterIPs", 18, "[]string"),
        ("type", 4, "string"),
        ("externalIPs", 5, "[]string"),
        ("sessionAffinity", 7, "string"),
        ("loadBalancerIP", 8, "string"),
        ("loadBalancerSourceRanges", 9, "[]string"),
        ("externalName", 10, "string"),
        ("externalTrafficPolicy", 11, "string"),
        ("healthCheckNodePort", 12, "int32"),
        ("publishNotReadyAddresses", 13, "bool"),
        ("sessionAffinityConfig", 14, "SessionAffinityConfig", "p"),
        ("ipFamilies", 19, "[]string"),
        ("ipFamilyPolicy", 17, "string", "p"),
        ("allocateLoadBalancerNodePorts", 20, "bool", "p"),
        ("loadBalancerClass", 21, "string", "p"),
        ("internalTrafficPolicy", 22, "string", "p"),
        ("trafficDistribution", 23, "string", "p"),
    ),
    "ServicePort": _fields(
        ("name", 1, "string"),
        ("protocol", 2, "string"),
        ("appProtocol", 6, "string", "p"),
        ("port", 3, "int32", "k"),
        ("targetPort", 4, "IntOrString"),
        ("nodePort", 5, "int32"),
    ),
    "SessionAffinityConfig": _fields(
        ("clientIP", 1, "ClientIPConfig", "p"),
    ),
    "ClientIPConfig": _fields(
        ("timeoutSeconds", 1, "int32", "p"),
    ),
    "ServiceStatus": _fields(
        ("loadBalancer", 1, "LoadBalancerStatus"),
        ("conditions", 2, "[]Condition"),
    ),
    "LoadBalancerStatus": _fields(
        ("ingress", 1, "[]LoadBalancerIngress"),
    ),
    "LoadBalancerIngress": _fields(
        ("ip", 1, "string"),
        ("hostname", 2, "string"),
        ("ipMode", 3, "string", "p"),
        ("ports", 4, "[]PortStatus"),
    ),
    # --- core/v1 Endpoints -----------------------------------------------------
    "Endpoints": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("subsets", 2, "[]EndpointSubset"),
    ),
    "EndpointSubset": _fields(
        ("addresses", 1, "[]EndpointAddress"),
        ("notReadyAddresses", 2, "[]EndpointAddress"),
        ("ports", 3, "[]CoreEndpointPort"),
    ),
    "EndpointAddress": _fields(
        ("ip", 1, "string", "k"),
        ("hostname", 3, "string"),
        ("nodeName", 4, "string", "p"),
        ("targetRef", 2, "ObjectReference", "p"),
    ),
    "CoreEndpointPort": _fields(
        ("name", 1, "string"),
        ("port", 2, "int32", "k"),
        ("protocol", 3, "string"),
        ("appProtocol", 4, "string", "p"),
    ),
    # --- core/v1 ConfigMap, Secret, Namespace -----------------------------------
    "ConfigMap": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("immutable", 4, "bool", "p"),
        ("data", 2, "{string}"),
        ("binaryData", 3, "{bytes}"),
    ),
    "Secret": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("immutable", 5, "bool", "p"),
        ("data", 2, "{bytes}"),
        ("stringData", 4, "{string}"),
        ("type", 3, "string"),
    ),
    "Namespace": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("spec", 2, "NamespaceSpec"),
        ("status", 3, "NamespaceStatus"),
    ),
    "NamespaceSpec": _fields(
        ("finalizers", 1, "[]string"),
    ),
    "NamespaceStatus": _fields(
        ("phase", 1, "string"),
        ("conditions", 2, "[]NamespaceCondition"),
    ),
    "NamespaceCondition": _fields(
        ("type", 1, "string", "k"),
        ("status", 2, "string", "k"),
        ("lastTransitionTime", 4, "Time"),
        ("reason", 5, "string"),
        ("message", 6, "string"),
    ),
    # --- core/v1 Node ------------------------------------------------------------
    "Node": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("spec", 2, "NodeSpec"),
        ("status", 3, "NodeStatus"),
    ),
    "NodeSpec": _fields(
        ("podCIDR", 1, "string"),
        ("podCIDRs", 7, "[]string"),
        ("providerID", 3, "string"),
        ("unschedulable", 4, "bool"),
        ("taints", 5, "[]Taint"),
        ("configSource", 6, "NodeConfigSource", "p"),
        ("externalID", 2, "string"),
        ("podPreemptionPolicy", 8, "PodPreemptionPolicy", "p"),
    ),
    "Taint": _fields(
        ("key", 1, "string", "k"),
        ("value", 2, "string"),
        ("effect", 3, "string", "k"),
        ("timeAdded", 4, "Time", "p"),
    ),
    "NodeConfigSource": _fields(
        ("configMap", 2, "ConfigMapNodeConfigSource", "p"),
    ),
    "ConfigMapNodeConfigSource": _fields(
        ("namespace", 1, "string", "k"),
        ("name", 2, "string", "k"),
        ("uid", 3, "string"),
        ("resourceVersion", 4, "string"),
        ("kubeletConfigKey", 5, "string", "k"),
    ),
    "PodPreemptionPolicy": _fields(
        ("disableResizePreemption", 1, "[]string"),
    ),
    "NodeStatus": _fields(
        ("capacity", 1, "{Quantity}"),
        ("allocatable", 2, "{Quantity}"),
        ("phase", 3, "string"),
        ("conditions", 4, "[]NodeCondition"),
        ("addresses", 5, "[]NodeAddress"),
        ("daemonEndpoints", 6, "NodeDaemonEndpoints"),
        ("nodeInfo", 7, "NodeSystemInfo"),
        ("images", 8, "[]ContainerImage"),
        ("volumesInUse", 9, "[]string"),
        ("volumesAttached", 10, "[]AttachedVolume"),
        ("config", 11, "NodeConfigStatus", "p"),
        ("runtimeHandlers", 12, "[]NodeRuntimeHandler"),
        ("features", 13, "NodeFeatures", "p"),
        ("declaredFeatures", 14, "[]string"),
    ),
    "NodeCondition": _fields(
        ("type", 1, "string", "k"),
        ("status", 2, "string", "k"),
        ("lastHeartbeatTime", 3, "Time"),
        ("lastTransitionTime", 4, "Time"),
        ("reason", 5, "string"),
        ("message", 6, "string"),
    ),
    "NodeAddress": _fields(
        ("type", 1, "string", "k"),
        ("address", 2, "string", "k"),
    ),
    "NodeDaemonEndpoints": _fields(
        ("kubeletEndpoint", 1, "DaemonEndpoint"),
    ),
    "DaemonEndpoint": _fields(
        ("Port", 1, "int32", "k"),
    ),
    "NodeSystemInfo": _fields(
        ("machineID", 1, "string", "k"),
        ("systemUUID", 2, "string", "k"),
        ("bootID", 3, "string", "k"),
        ("kernelVersion", 4, "string", "k"),
        ("osImage", 5, "string", "k"),
        ("containerRuntimeVersion", 6, "string", "k"),
        ("kubeletVersion", 7, "string", "k"),
        ("kubeProxyVersion", 8, "string", "k"),
        ("operatingSystem", 9, "string", "k"),
        ("architecture", 10, "string", "k"),
        ("swap", 11, "NodeSwapStatus", "p"),
    ),
    "NodeSwapStatus": _fields(
        ("capacity", 1, "int64", "p"),
    ),
    "ContainerImage": _fields(
        ("names", 1, "[]string"),
        ("sizeBytes", 2, "int64"),
    ),
    "AttachedVolume": _fields(
        ("name", 1, "string", "k"),
        ("devicePath", 2, "string", "k"),
    ),
    "NodeConfigStatus": _fields(
        ("assigned", 1, "NodeConfigSource", "p"),
        ("active", 2, "NodeConfigSource", "p"),
        ("lastKnownGood", 3, "NodeConfigSource", "p"),
        ("error", 4, "string"),
    ),
    "NodeRuntimeHandler": _fields(
        ("name", 1, "string", "k"),
        ("features", 2, "NodeRuntimeHandlerFeatures", "p"),
    ),
    "NodeRuntimeHandlerFeatures": _fields(
        ("recursiveReadOnlyMounts", 1, "bool", "p"),
        ("userNamespaces", 2, "bool", "p"),
    ),
    "NodeFeatures": _fields(
        ("supplementalGroupsPolicy", 1, "bool", "p"),
    ),
}
