"""A podnet cluster on this machine: its state directory, its PKI and its processes.

`state` knows where everything lives (`<root>/<name>/`), `pki` makes the certificates, and
`lifecycle` starts, inspects and tears down the processes (`podnet up`, `status`, `down`).
"""
