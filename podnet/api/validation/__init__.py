"""Validation of the objects podnet serves, as kube-apiserver validates them.

`validate(obj, old)` checks a create (old is None) or an update of a whole object: its
metadata with the name rule of its kind, then the kind's own rules, including what an update
may not change. `validate_status(obj, old)` checks a write to the status subresource. Both
return FieldErrors worded as Kubernetes words them (an empty list when the object is valid)
and never raise, whatever the JSON holds. Objects are expected to be defaulted first
(podnet.api.defaults.apply_defaults), as Kubernetes defaults before it validates.

Kinds this package does not know are not checked beyond being an object.
"""

from __future__ import annotations

from typing import Any

from podnet.api import names, resources
from podnet.api.errors import FieldError, invalid
from podnet.api.validation import core, networking
from podnet.api.validation.meta import NameFn, validate_object_meta, validate_object_meta_update

Validator = core.Validator

VALIDATORS: dict[tuple[str, str], Validator] = {**core.VALIDATORS, **networking.VALIDATORS}
STATUS_VALIDATORS: dict[tuple[str, str], Validator] = {
    **core.STATUS_VALIDATORS,
    **getattr(networking, "STATUS_VALIDATORS", {}),
}

# metadata.name (and generateName) rule per kind; every other kind uses DNS-1123 subdomains.
NAME_RULES: dict[str, NameFn] = {
    "Namespace": names.name_is_dns_label,
    "Service": names.name_is_dns1035_label,
}

_UNSET: Any = object()
_TYPE_ERROR = "must be of type "


def _tidy(errs: list[FieldError]) -> list[FieldError]:
    """Drop repeats, and whatever else is said about a field whose JSON type is wrong (its
    type error says it all), as Kubernetes reports a decoding error and nothing more."""
    wrong = [e.path for e in errs if e.type == "FieldValueInvalid"
             and e.detail.startswith(_TYPE_ERROR)]
    out: list[FieldError] = []
    seen: set[str] = set()
    for e in errs:
        text = f"{e.type} {e}"
        if text in seen:
            continue
        if not (e.type == "FieldValueInvalid" and e.detail.startswith(_TYPE_ERROR)) and any(
                e.path == w or e.path.startswith((f"{w}.", f"{w}[")) for w in wrong):
            continue
        seen.add(text)
        out.append(e)
    return out


def _kind_of(obj: Any) -> tuple[str, str] | None:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if isinstance(api_version, str) and isinstance(kind, str):
        return api_version, kind
    return None


def _check_meta(obj: dict[str, Any], old: dict[str, Any] | None,
                gvk: tuple[str, str] | None) -> list[FieldError]:
    res = resources.by_kind(*gvk) if gvk else None
    if res is None:
        return []
    errs = validate_object_meta(obj, namespaced=res.namespaced,
                                name_fn=NAME_RULES.get(res.kind, names.name_is_dns_subdomain))
    if old is not None:
        errs += validate_object_meta_update(obj, old)
    return errs


def validate(obj: dict[str, Any], old: dict[str, Any] | None = None, *,
             node_port_range: tuple[int, int] | None = _UNSET) -> list[FieldError]:
    """The problems with `obj` as a create (old None) or as an update of `old`.

    `node_port_range` is the cluster's Service node port range (inclusive); by default
    core.NODE_PORT_RANGE, and None skips that check.
    """
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be of type object")]
    if old is not None and not isinstance(old, dict):
        old = None
    gvk = _kind_of(obj)
    errs = _check_meta(obj, old, gvk)
    if gvk == ("v1", "Service"):
        if node_port_range is _UNSET:
            return _tidy(errs + core.validate_service(obj, old))
        return _tidy(errs + core.validate_service(obj, old, node_port_range=node_port_range))
    validator = VALIDATORS.get(gvk) if gvk else None
    if validator is not None:
        errs += validator(obj, old)
    return _tidy(errs)


def validate_status(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """The problems with a write of `obj` to the status subresource of `old`."""
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be of type object")]
    if old is not None and not isinstance(old, dict):
        old = None
    gvk = _kind_of(obj)
    errs = _check_meta(obj, old, gvk)
    validator = STATUS_VALIDATORS.get(gvk) if gvk else None
    if validator is not None:
        errs += validator(obj, old)
    return _tidy(errs)


__all__ = ["NAME_RULES", "STATUS_VALIDATORS", "VALIDATORS", "validate", "validate_status"]
