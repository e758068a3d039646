"""Controllers that run inside the server process and act through the registry."""
