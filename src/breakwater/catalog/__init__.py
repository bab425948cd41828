"""The catalog: a pure function from decoded Kubernetes objects to the routing model.

Inputs are the objects the watcher, a lookup or a module read from etcd.  The output
is a :class:`Catalog`: routes (host, path, backend, options), backends with their
servers, TLS certificates, the default backend, and every object that was rejected
with its reason.  A bad object is rejected alone; the others keep working.

Where routes come from (:mod:`.sources`): ``Ingress`` objects of Breakwater's ingress
class; ``ConfigMap`` objects carrying the route label (``breakwater.io/edge: "true"``
by default), one per service; plain routes (:mod:`breakwater.cluster.plain_routes`);
the Gateway API's HTTPRoutes (:mod:`.gateway`, their precedence: :mod:`.precedence`).
Where servers come from (:mod:`.servers`): ``EndpointSlice`` objects (``Endpoints``
when a service has no slice), or, in NodePort mode, every ready Node's InternalIP
with the Service's nodePort.  Options (:mod:`.options`), certificates (:mod:`.tls`),
the object under construction (:mod:`.builder`), the whole build (:mod:`.build`).
"""

from breakwater.catalog.build import (
    build_catalog,
    refresh_servers,
    route_sources,
    source_fingerprints,
    without_sources,
)
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    CachePolicy,
    Canary,
    Catalog,
    CatalogSettings,
    Certificate,
    Cors,
    Rejected,
    Rejection,
    Route,
    RouteFeatures,
    Server,
    ServerState,
    StickyCookie,
)

__all__ = [
    "Backend",
    "BackendOptions",
    "CachePolicy",
    "Canary",
    "Catalog",
    "CatalogSettings",
    "Certificate",
    "Cors",
    "Rejected",
    "Rejection",
    "Route",
    "RouteFeatures",
    "Server",
    "ServerState",
    "StickyCookie",
    "build_catalog",
    "refresh_servers",
    "route_sources",
    "source_fingerprints",
    "without_sources",
]
