"""podnet's cluster DNS: the kube-dns Service's server, per the Kubernetes DNS specification.

  model.py    the shared types: questions, resource records, answers (pure)
  wire.py     DNS messages <-> bytes: parsing queries, encoding responses, EDNS0, name
              compression, truncation (pure)
  index.py    Services, EndpointSlices, Pods and Namespaces -> the cluster's records, indexed
              by lower-cased name (pure)
  answer.py   (question, index) -> answer: the rules of the specification (pure)
"""
