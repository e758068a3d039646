"""Clients of the podnet API server. `http` is a small synchronous one for the CLI and tests."""
