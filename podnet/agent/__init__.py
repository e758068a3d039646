"""The node agent (`podnet agent`): podnet's kubelet. One per node, an API client.

  main.py    the command line and the process
  agent.py   the loops: register the Node and keep it Ready, watch Nodes for routes, watch this
             node's Pods and hand them to the pod runtime (podnet.runtime), report their status
  node.py    the Node object and its status (pure)
  routes.py  routes to the other nodes' pod CIDRs, host-gw or vxlan: desired state (pure) and
             the thin shell that applies it inside the node's namespace
"""
