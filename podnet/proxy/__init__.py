"""podnet's service proxy: one nftables table per node namespace, `podnet-<cluster>` (ip).

  model.py       Services + EndpointSlices -> Ruleset: the entries of the table's sets, maps
                 and affinity chains (pure); also health-check ports and stale UDP flows
  render.py      Ruleset -> the whole table as an nft script; Delta -> an incremental script
                 (pure)
  announce.py    which node answers ARP for each LoadBalancer IP (pure)
  nft.py         runs a script in the node's namespace (shell)
  speaker.py     holds this node's LoadBalancer IPs on a dummy link, gratuitous ARP (shell)
  healthcheck.py answers healthCheckNodePorts (shell)
  conntrack.py   clears UDP flows of endpoints gone (shell)
  parts.py       the last three together, for an agent
  proxier.py     the sync loop: watch -> mark dirty -> recompile dirty Services -> diff ->
                 apply; then the node-side parts

A key is ip . proto . port: a ClusterIP, the node's IP (node ports), a LoadBalancer IP or an
external IP with a port. The packet's path through the node's hooks (priorities in brackets):

  from a pod or the LAN                                 from a socket on the node
        │                                                     │
  prerouting [-110 filter] firewall                    output [-110 filter] firewall
        │   key in fw-keys, source not in fw-allow -> drop    │
  prerouting [-100 nat] nat-prerouting                 output [-100 nat] nat-output
        │   off-cluster source to a ClusterIP -> mark         │   (same, and keys in
        │   key in masq-keys (policy Cluster) -> mark         │    local-keys -> mark)
        │   source outside the pod network -> external-local: │
        │     key in local-n<N> -> dnat to local-eps-<proto>[key.(random mod N)]
        │     other key in local-keys -> accept (no local endpoint: the filter drops it)
        │   services: key in affinity -> goto its chain (remembered client -> its endpoint)
        │     key in svc-n<N> -> dnat to eps-<proto>[key.(random mod N)]
  prerouting [-90 filter] mark-hairpin                        │
        │   DNATed and source == new destination -> mark      │
        ├──────────────► input [-10] check                    │
  forward [-10 filter] check                           output [-10 filter] check
        │   still addressed to a key: no-endpoints -> reject (tcp reset / icmp port-
        │   unreachable), no-local -> drop; another port of a ClusterIP -> reject;
        │   other service-CIDR IP -> drop
  postrouting [100 nat] nat-postrouting: marked -> clear the mark, masquerade
        │
      out to the endpoint (a local pod's veth, or eth0 towards its node)
"""
