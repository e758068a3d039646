"""podnet's cluster DNS: the kube-dns Service's server, per the Kubernetes DNS specification.

  model.py    the shared types: questions, resource records, answers (pure)
  wire.py     DNS messages <-> bytes: parsing queries, encoding responses, EDNS0, name
              compression, truncation (pure)
  index.py    Services, EndpointSlices, Pods and Namespaces -> the cluster's records, indexed
              by lower-cased name (pure)
  answer.py   (question, index) -> answer: the rules of the specification (pure)
  metrics.py  the server's counters and histograms, in Prometheus text format (pure)
  forward.py  names outside the zone: upstreams, a TTL cache, loop detection (shell)
  server.py   UDP and TCP on uvloop, responses cached as wire bytes (only the id patched,
              cleared whenever the index changes), the index following the API (shell)
  main.py     `python -m podnet.dns.main`: the process a kube-dns pod runs
"""
