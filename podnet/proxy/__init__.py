"""podnet's service proxy: one nftables table per node namespace, `podnet-<cluster>` (ip).

  model.py    Services + EndpointSlices -> Ruleset: the elements of the table's sets and maps
              (pure)
  render.py   Ruleset -> the whole table as an nft script; Delta -> an incremental script (pure)
  nft.py      runs a script in the node's namespace (shell)
  proxier.py  the sync loop: watch -> mark dirty -> recompile dirty Services -> diff -> apply

The packet's path through the node's hooks (priorities in brackets):

  from a pod or the LAN                                 from a socket on the node
        │                                                     │
  prerouting [-100 nat] nat-prerouting                 output [-100 nat] nat-output
        │   off-cluster source to a ClusterIP -> mark         │   (same rules)
        │   jump services: vip.proto.port in svc-n<N>         │
        │     -> dnat to eps[vip.proto.port.(random mod N)]   │
        │   local daddr, proto.port in np-n<N> -> mark,       │
        │     dnat to np-eps[proto.port.(random mod N)]       │
  prerouting [-90 filter] mark-hairpin                        │
        │   DNATed and source == new destination -> mark      │
        ├──────────────► input [-10] check                    │
  forward [-10 filter] check                           output [-10 filter] check
        │   still addressed to a ClusterIP: no endpoints, or a port it lacks -> reject
        │   (tcp reset / icmp port-unreachable); other service-CIDR IP -> drop
  postrouting [100 nat] nat-postrouting: marked -> clear the mark, masquerade
        │
      out to the endpoint (a local pod's veth, or eth0 towards its node)
"""
