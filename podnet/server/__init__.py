"""The API server: the Kubernetes REST API over the store, plus the controllers that run with it.

  http.py       paths, verbs, negotiation, watch streams, discovery, auth   (aiohttp)
  registry.py   what each verb means for an object, in store transactions
  errors.py     Status objects
  controllers/  loops that act on stored objects (namespace deletion, compaction)
  main.py       `podnet server --state-dir DIR`
"""
