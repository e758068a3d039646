"""podnet: the Kubernetes network model on Linux, with real packets."""

__version__ = "0.1.0"
