"""The kinds podnet serves, and where they live in the REST API and in the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`services` or `ingresses.networking.k8s.io`, as Kubernetes names it in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """The store prefix of this resource, or of one namespace of it."""
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.group or 'core'}/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.group or 'core'}/{self.plural}/{name}"


_ALL = ("all",)

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status",)),
    Resource("", "v1", "Node", "nodes", "node", False, ("no",), ("status",)),
    Resource("", "v1", "Pod", "pods", "pod", True, ("po",), ("status",), _ALL),
    Resource("", "v1", "Service", "services", "service", True, ("svc",), ("status",), _ALL),
    Resource("", "v1", "Secret", "secrets", "secret", True),
    Resource("", "v1", "Event", "events", "event", True, ("ev",)),
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True, ("ing",),
             ("status",)),
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", False),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True,
             ("netpol",)),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def by_path(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Resource | None:
    return _BY_KIND.get((api_version, kind))


def lookup(name: str) -> Resource | None:
    """Find a resource by what a user types: plural, singular, kind or short name,
    optionally qualified by group (`ingresses.networking.k8s.io`)."""
    want = name.lower()
    for r in RESOURCES:
        names = {r.plural, r.singular, r.kind.lower(), *r.short_names}
        if want in names or (r.group and want in {f"{n}.{r.group}" for n in names}):
            return r
    return None


def groups() -> dict[str, list[str]]:
    """API group name -> versions served, in a stable order; the core group is ""."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out
