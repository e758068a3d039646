"""The `podnet` command: cluster lifecycle (up, down, status) and a small kubectl (apply, get,
delete) for the cluster's API."""
