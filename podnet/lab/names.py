"""The naming contract for everything podnet creates in the kernel (pure).

Every name carries the cluster's prefix, so `podnet down` (and a crash cleanup) can find all of
a cluster's objects, and two clusters never touch each other's:

  network namespaces   podnet-<cluster>-lan            the LAN: a bridge, one port per machine
                       podnet-<cluster>-<node>         a node (node names are node-1 .. node-N)
                       podnet-<cluster>-external       a host outside the cluster, on the LAN
                       podnet-<cluster>-pod-<uid>      one pod's sandbox
  interfaces           br0                             the LAN bridge (in the lan namespace)
                       <machine>                       the LAN side of a machine's veth
                       eth0                            a machine's LAN interface / a pod's NIC
                       vxlan0                          the vxlan backend's device (in a node)
                       pn<11 hex>                      a pod's veth, node side (see pod_veth)
  nft tables           podnet-<cluster> (one per node namespace; later issues)

Interface names live inside namespaces podnet made, so they need no cluster prefix; Linux caps
them at 15 characters.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "podnet"
IFNAMSIZ = 15


def cluster_prefix(cluster: str) -> str:
    return f"{PREFIX}-{cluster}-"


def lan_netns(cluster: str) -> str:
    return f"{PREFIX}-{cluster}-lan"


def node_netns(cluster: str, node: str) -> str:
    return f"{PREFIX}-{cluster}-{node}"


def external_netns(cluster: str) -> str:
    return f"{PREFIX}-{cluster}-external"


def pod_netns(cluster: str, pod_uid: str) -> str:
    return f"{PREFIX}-{cluster}-pod-{pod_uid}"


def node_name(index: int) -> str:
    """Node names, 1-based: node-1, node-2, ..."""
    return f"node-{index}"


def pod_veth(container_id: str, ifname: str) -> str:
    """The node-side name of a pod's veth: stable for (container, ifname), 13 characters."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return "pn" + digest[:11]


_OWN_SUFFIX = re.compile(
    r"^(lan|external|node-[0-9]+|pod-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def owns_netns(cluster: str, netns: str) -> bool:
    """Whether a namespace name is one of this cluster's. Exact patterns, so that cluster "a"
    never claims "podnet-a-node-lan", the LAN of a cluster named "a-node"."""
    prefix = cluster_prefix(cluster)
    return netns.startswith(prefix) and bool(_OWN_SUFFIX.match(netns[len(prefix):]))
