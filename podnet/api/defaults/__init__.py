"""Defaulting of the objects podnet serves, as Kubernetes' versioned defaulting does it.

`apply_defaults(obj)` fills in, in place, what Kubernetes fills in when it decodes an object of
that apiVersion and kind; kinds it does not know are left untouched. It runs before
validation and never raises, whatever the JSON holds: a field of the wrong type is left for
validation to report.
"""

from __future__ import annotations

from typing import Any

from podnet.api.defaults import core, networking

Defaulter = core.Defaulter

DEFAULTERS: dict[tuple[str, str], Defaulter] = {**core.DEFAULTERS, **networking.DEFAULTERS}


def apply_defaults(obj: dict[str, Any]) -> None:
    """Fill in the defaults of `obj` in place."""
    if not isinstance(obj, dict):
        return
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return
    defaulter = DEFAULTERS.get((api_version, kind))
    if defaulter is not None:
        defaulter(obj)


__all__ = ["DEFAULTERS", "apply_defaults"]
