"""podnet's ingress controller: HTTP and HTTPS from outside the cluster into Services.

The package is layered like the service proxy: Kubernetes objects are compiled into desired
state by pure code, and a thin shell applies it.

- routes.py (pure): Ingresses, IngressClasses, Services, EndpointSlices and Secrets -> a
  `RouteTable` (which Ingresses are ours, hosts, paths, backends with their ready endpoints,
  TLS certificates), and `match(table, host, path)`, the routing decision as a function.
- haproxy.py (pure): a `RouteTable` -> the HAProxy configuration (haproxy.cfg, map files,
  certificate files), and what changes between two configurations: the Runtime API commands
  that apply a change without a reload, or the verdict that a reload is needed.
- controller.py (the shell): watches the objects, recomputes on change, writes the files,
  talks to HAProxy's Runtime API or reloads it (master-worker, sockets handed over), and
  writes the Ingresses' status; main.py runs it as the `podnet-ingress` pod's container, with
  HAProxy as its child (podnet.cluster.addons and lifecycle deploy it).

    Ingress, IngressClass,        routes.build()       haproxy.render()       haproxy.cfg
    Service, EndpointSlice, ---->  RouteTable  ----->      Config       ----> maps, certs
    Secret (API dicts)                                        |
                                          haproxy.needs_reload(old, new) / runtime_commands()
"""
