"""ObjectMeta validation, and the typed readers every kind validator uses.

Objects arrive as decoded JSON from anyone, so any field may hold the wrong type. The readers
below (`get_obj`, `get_str`, ...) return a usable value and record a FieldError for a wrong
type instead of raising; a missing field or JSON null reads as unset, as Go's decoder does.

The metadata rules are apimachinery's ValidateObjectMeta / ValidateObjectMetaUpdate plus the
core group's finalizer check; messages are worded as Kubernetes words them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from podnet.api import names
from podnet.api.errors import FieldError, forbidden, invalid, required

Obj = dict[str, Any]
Errors = list[FieldError]
# A name rule: (value, is_generate_name_prefix) -> problems, as names.name_is_* are.
NameFn = Callable[[str, bool], list[str]]

TOTAL_ANNOTATION_SIZE = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


# -- paths ----------------------------------------------------------------------------------

def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# -- typed readers ----------------------------------------------------------------------------

def type_error(path: str, value: Any, want: str) -> FieldError:
    return invalid(path, value, f"must be of type {want}")


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def as_obj(value: Any, path: str, errs: Errors) -> Obj | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    errs.append(type_error(path, value, "object"))
    return None


def item_obj(value: Any, path: str, errs: Errors) -> Obj | None:
    """A list element that should be an object; null reads as an empty object."""
    if value is None:
        return {}
    return as_obj(value, path, errs)


def as_dict(value: Any) -> Obj:
    """`value` if it is an object, else an empty one: for reads that report nothing."""
    return value if isinstance(value, dict) else {}


def _raw(parent: Obj | None, name: str) -> Any:
    return parent.get(name) if isinstance(parent, dict) else None


def get_obj(parent: Obj | None, name: str, base: str, errs: Errors) -> Obj | None:
    return as_obj(_raw(parent, name), child(base, name), errs)


def get_list(parent: Obj | None, name: str, base: str, errs: Errors) -> list[Any]:
    value = _raw(parent, name)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    errs.append(type_error(child(base, name), value, "array"))
    return []


def get_opt_str(parent: Obj | None, name: str, base: str, errs: Errors) -> str | None:
    value = _raw(parent, name)
    if value is None or isinstance(value, str):
        return value
    errs.append(type_error(child(base, name), value, "string"))
    return None


def get_str(parent: Obj | None, name: str, base: str, errs: Errors) -> str:
    return get_opt_str(parent, name, base, errs) or ""


def get_int(parent: Obj | None, name: str, base: str, errs: Errors) -> int | None:
    value = _raw(parent, name)
    if value is None:
        return None
    if is_int(value):
        return int(value)
    errs.append(type_error(child(base, name), value, "integer"))
    return None


def get_bool(parent: Obj | None, name: str, base: str, errs: Errors) -> bool | None:
    value = _raw(parent, name)
    if value is None or isinstance(value, bool):
        return value
    errs.append(type_error(child(base, name), value, "boolean"))
    return None


def get_str_list(parent: Obj | None, name: str, base: str, errs: Errors) -> list[str]:
    path = child(base, name)
    out: list[str] = []
    for i, item in enumerate(get_list(parent, name, base, errs)):
        if isinstance(item, str):
            out.append(item)
        else:
            errs.append(type_error(index(path, i), item, "string"))
    return out


def get_str_map(parent: Obj | None, name: str, base: str, errs: Errors) -> dict[str, str]:
    """A map of strings (labels, selectors); entries of the wrong type are reported, dropped."""
    path = child(base, name)
    value = as_obj(_raw(parent, name), path, errs)
    out: dict[str, str] = {}
    for k, v in (value or {}).items():
        if isinstance(v, str):
            out[k] = v
        else:
            errs.append(type_error(key(path, k), v, "string"))
    return out


# -- name and label rules ---------------------------------------------------------------------

def msgs_to_errors(path: str, value: Any, msgs: list[str]) -> Errors:
    return [invalid(path, value, m) for m in msgs]


def validate_labels(labels: dict[str, str], path: str) -> Errors:
    """Keys must be qualified names, values label values; both reported at `path`."""
    errs: Errors = []
    for k, v in labels.items():
        errs += msgs_to_errors(path, k, names.is_qualified_name(k))
        errs += msgs_to_errors(path, v, names.is_label_value(v))
    return errs


def validate_annotations(annotations: dict[str, str], path: str) -> Errors:
    errs: Errors = []
    size = 0
    for k, v in annotations.items():
        # Annotation keys are qualified names in which case does not matter.
        errs += msgs_to_errors(path, k, names.is_qualified_name(k.lower()))
        size += len(k.encode()) + len(v.encode())
    if size > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def too_long(path: str, limit: int) -> FieldError:
    """Kubernetes' TooLong: the value itself is not repeated in the message."""
    return FieldError("FieldValueTooLong", path, detail=f"must have at most {limit} bytes")


def validate_finalizer_name(name: str, path: str, indexed_path: str) -> Errors:
    """A qualified name; one without a '/' must be a standard finalizer."""
    errs = msgs_to_errors(path, name, names.is_qualified_name(name))
    if "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(invalid(indexed_path, name,
                            "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def _validate_finalizers(meta: Obj, path: str, errs: Errors) -> None:
    finalizers = get_str_list(meta, "finalizers", "metadata", errs)
    for i, f in enumerate(finalizers):
        errs += validate_finalizer_name(f, path, index(path, i))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, finalizers,
                            "finalizer orphan and foregroundDeletion cannot be both set"))


def _validate_owner_references(meta: Obj, errs: Errors) -> None:
    path = "metadata.ownerReferences"
    controller = ""
    refs = get_list(meta, "ownerReferences", "metadata", errs)
    for i, item in enumerate(refs):
        ref = item_obj(item, index(path, i), errs)
        if ref is None:
            continue
        # Kubernetes reports these at the list's path, not the element's.
        api_version = get_str(ref, "apiVersion", path, errs)
        kind = get_str(ref, "kind", path, errs)
        name = get_str(ref, "name", path, errs)
        uid = get_str(ref, "uid", path, errs)
        version = api_version.rpartition("/")[2]
        group = api_version.rpartition("/")[0]
        if not version:
            errs.append(invalid(child(path, "apiVersion"), api_version,
                                "version must not be empty"))
        for field, value in (("kind", kind), ("name", name), ("uid", uid)):
            if not value:
                errs.append(invalid(child(path, field), value, "must not be empty"))
        if (group, version, kind) == ("", "v1", "Event"):
            errs.append(invalid(path, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if get_bool(ref, "controller", path, errs):
            current = f"{kind}/{name}"
            if controller:
                errs.append(invalid(path, refs, "Only one reference can have Controller set to "
                                    f'true. Found "true" in references for {controller} and '
                                    f"{current}"))
            else:
                controller = current


def validate_object_meta(obj: Obj, *, namespaced: bool, name_fn: NameFn) -> Errors:
    """ValidateObjectMeta for a create (or the metadata part of any write)."""
    errs: Errors = []
    meta = as_obj(obj.get("metadata"), "metadata", errs)
    if meta is None:
        if not errs:
            errs.append(required("metadata.name", "name or generateName is required"))
        return errs
    generate = get_str(meta, "generateName", "metadata", errs)
    name = get_str(meta, "name", "metadata", errs)
    if generate:
        errs += msgs_to_errors("metadata.generateName", generate, name_fn(generate, True))
    if name:
        errs += msgs_to_errors("metadata.name", name, name_fn(name, False))
    elif not generate:
        errs.append(required("metadata.name", "name or generateName is required"))
    namespace = get_str(meta, "namespace", "metadata", errs)
    if namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        else:
            errs += msgs_to_errors("metadata.namespace", namespace,
                                   names.name_is_dns_label(namespace))
    elif namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    generation = get_int(meta, "generation", "metadata", errs)
    if generation is not None and generation < 0:
        errs.append(invalid("metadata.generation", generation,
                            "must be greater than or equal to 0"))
    errs += validate_labels(get_str_map(meta, "labels", "metadata", errs), "metadata.labels")
    errs += validate_annotations(get_str_map(meta, "annotations", "metadata", errs),
                                 "metadata.annotations")
    _validate_owner_references(meta, errs)
    _validate_finalizers(meta, "metadata.finalizers", errs)
    return errs


def validate_object_meta_update(new: Obj, old: Obj) -> Errors:
    """What an update may not change in metadata. The server keeps uid, creationTimestamp,
    generation and resourceVersion itself, so those are only compared when the client sent
    them."""
    errs: Errors = []
    meta = as_obj(new.get("metadata"), "metadata", errs) or {}
    old_meta = as_dict(old.get("metadata"))
    for field in ("name", "namespace"):
        if meta.get(field, "") != old_meta.get(field, ""):
            errs.append(invalid(child("metadata", field), meta.get(field, ""), FIELD_IMMUTABLE))
    for field in ("uid", "creationTimestamp"):
        if meta.get(field) not in (None, "") and meta.get(field) != old_meta.get(field):
            errs.append(invalid(child("metadata", field), meta.get(field), FIELD_IMMUTABLE))
    if old_meta.get("deletionTimestamp"):
        before = get_str_list(old_meta, "finalizers", "metadata", [])
        after = get_str_list(meta, "finalizers", "metadata", [])
        extra = sorted(set(after) - set(before))
        if extra:
            listed = ", ".join(f'"{f}"' for f in extra)
            errs.append(forbidden("metadata.finalizers", "no new finalizers can be added if the "
                                  f"object is being deleted, found new finalizers "
                                  f"[]string{{{listed}}}"))
    return errs
