"""The lab: a cluster's machines as network namespaces on this host (a LAN, nodes, an external
host), described as data (topology) and built by a thin shell (build)."""
