"""The pure core of the API: Kubernetes objects in, decisions out.

Nothing in this package does I/O. It knows the kinds podnet serves (resources), how to check
them (schema, validation), fill them in (defaults), change them (patch), select them (selectors)
and print them (tables). The server in podnet.server is the shell that stores and serves them.
"""
