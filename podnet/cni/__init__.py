"""CNI (Container Network Interface, spec 1.1) for podnet.

  spec.py     pure: configuration lists, version negotiation, results, errors, the environment
              of a plugin call
  runtime.py  the runtime side (what a container runtime does with libcni): runs any plugins of
              a conflist, caches results for DEL/CHECK, GC, STATUS
  plugin.py   the `podnet-cni` plugin (an executable: env + stdin in, JSON out)
  ipam.py     the plugin's built-in IPAM: leases on disk, locked, never double-assigned
  netlink.py  a small rtnetlink client (stdlib only) used by the plugin

This package's __init__ stays empty on purpose: the plugin is a short-lived process, and every
import on its path costs start-up time.
"""
