"""NetworkPolicy: one compiled model, read by the kernel renderer and by the analyzer.

  model.py     pods + namespaces + NetworkPolicies -> PolicyModel (pure): for each pod, whether
               it is isolated for ingress / egress and by which policies, and the grants that
               allow traffic (peers as IPv4 ranges, ports resolved per destination pod); also
               `decide`, the verdict for one connection, with the policies and rules that made it
  analyze.py   the reachability matrix and `explain` text, table / JSON / CSV (pure)
  render.py    PolicyModel + a node -> that node's nft objects: per-pod chains reached through
               verdict maps keyed by pod IP, per-pod interval sets of allowed peers and ports
               (pure); full body and incremental scripts for the node's table
  enforcer.py  the agent's loop: watch Pods, Namespaces, NetworkPolicies -> compile -> render
               -> apply in the node's table (shell); pods are admitted (isolated) before their
               containers start

The nft objects live in the node's one table (`podnet-<cluster>`, family ip), beside the
service proxy's, under names starting with `pol-`.
"""
