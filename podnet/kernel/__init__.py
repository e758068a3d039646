"""The thin shell over the kernel: network namespaces, `ip` and sysctls. Everything that changes
kernel state goes through here, and only ever inside namespaces podnet created."""
