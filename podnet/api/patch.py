"""The three PATCH formats of the Kubernetes API, as pure functions on JSON values.

- `json_patch`: RFC 6902 (`application/json-patch+json`), a list of operations on JSON pointers.
- `json_merge_patch`: RFC 7386 (`application/merge-patch+json`): objects merge, null deletes,
  anything else replaces.
- `strategic_merge_patch`: Kubernetes' strategic merge patch
  (`application/strategic-merge-patch+json`), what `kubectl apply` (client side) and
  `kubectl patch` send by default. Lists of objects merge element-wise by a merge key taken from
  the Go struct tags of the built-in types (the `MERGE_KEYS` table below), and the patch may
  carry directives: `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
  `$deleteFromPrimitiveList/<field>`.

The strategic merge follows what the apiserver does (k8s.io/apimachinery strategicpatch with
`MergeParallelList` and `IgnoreUnmatchedNulls`), including the order it gives merged lists.
It was checked case by case against `kubectl patch --local`, which runs the same code. Where
Kubernetes keeps patch leftovers that its typed decoding later drops or trips over (directives or
nulls inside a value that has nothing to merge with), this module drops them instead; see
`_fresh`.

`json_patch` follows RFC 6902 to the letter where the library Kubernetes uses is looser: it
rejects `replace` of a missing member, `add` without a value, negative array indexes and
indexes with leading zeros, all of which Kubernetes accepts.

All functions return new values and never modify their arguments. Malformed patches raise
`PatchError`, whose `status` is the HTTP status the server should answer with.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "MERGE_KEYS",
    "PatchError",
    "json_merge_patch",
    "json_patch",
    "merge_strategy",
    "strategic_merge_patch",
]


class PatchError(ValueError):
    """A patch that cannot be applied. `status` is 400 when the patch document itself has the
    wrong shape (not a list of operations, not an object) and 422 when it is well formed but
    does not apply to the object (missing path, failed test, bad directive, missing merge key)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# JSON values: kinds, equality, copies
# ---------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON type of a decoded value (Go's reflect kind, as strategicpatch compares them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    raise PatchError(f"{type(value).__name__} is not a JSON value", 400)


def _identity(value: Any) -> Any:
    """A hashable stand-in for a JSON value: equal exactly when the values are JSON-equal
    (numbers by value, true is not 1, objects regardless of key order)."""
    kind = _kind(value)
    if kind == "object":
        return ("o", frozenset((k, _identity(v)) for k, v in value.items()))
    if kind == "array":
        return ("a", tuple(_identity(v) for v in value))
    return (kind, value)


def _equal(a: Any, b: Any) -> bool:
    return bool(_identity(a) == _identity(b))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# ---------------------------------------------------------------------------------------------
# RFC 7386: JSON merge patch
# ---------------------------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: an object patch merges key by key into an object (a
    non-object target counts as {}), null deletes a key, any other patch value replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    base = copy.deepcopy(target) if isinstance(target, dict) else {}
    return _merge_into(base, patch)


def _merge_into(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `base`, which the caller owns; values taken from the patch are copied."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict):
            current = base.get(key)
            base[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# ---------------------------------------------------------------------------------------------
# RFC 6902: JSON patch
# ---------------------------------------------------------------------------------------------

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")
_MISSING = object()


def json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of add/remove/replace/move/copy/test operations).
    The operations apply in order and all or nothing: any failure raises PatchError."""
    if not isinstance(ops, list):
        raise PatchError(
            f"a JSON patch must be a list of operations, not {_kind(ops)}", 400)
    doc = copy.deepcopy(target)
    for number, op in enumerate(ops):
        doc = _apply_op(doc, op, number)
    return doc


def _apply_op(doc: Any, op: Any, number: int) -> Any:
    if not isinstance(op, dict):
        raise PatchError(f"JSON patch operation {number} must be an object, not {_kind(op)}", 400)
    name = op.get("op", _MISSING)
    if name is _MISSING:
        raise PatchError(f'JSON patch operation {number} has no "op" member', 400)
    handler = _OPS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise PatchError(f"JSON patch operation {number}: unknown op {_short(name)}; expected "
                         "add, remove, replace, move, copy or test", 400)
    label = f'JSON patch operation {number} ("{name}" at {_short(op.get("path"))})'
    path = _pointer(_member(op, "path", label), label)
    return handler(doc, path, op, label)


def _member(op: dict[str, Any], name: str, label: str) -> Any:
    if name not in op:
        raise PatchError(f'{label}: missing "{name}" member', 400)
    return op[name]


def _pointer(text: Any, label: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into reference tokens, undoing ~1 and ~0."""
    if not isinstance(text, str):
        raise PatchError(f"{label}: a JSON pointer must be a string, not {_kind(text)}", 400)
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f'{label}: JSON pointer {text!r} must be empty or start with "/"', 400)
    tokens = text[1:].split("/")
    for token in tokens:
        if _BAD_ESCAPE.search(token):
            raise PatchError(f"{label}: JSON pointer {text!r} has a '~' not followed by 0 or 1",
                             400)
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _render_pointer(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _array_index(token: str, array: list[Any], label: str, tokens: list[str],
                 for_add: bool) -> int:
    where = _render_pointer(tokens)
    if token == "-" and for_add:
        return len(array)
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(f"{label}: {token!r} is not an array index (in {where!r})")
    index = int(token)
    limit = len(array) if for_add else len(array) - 1
    if index > limit:
        raise PatchError(f"{label}: index {index} is out of range for the array of length "
                         f"{len(array)} at {where!r}")
    return index


def _get(doc: Any, tokens: list[str], label: str) -> Any:
    """The value a pointer refers to; PatchError if it refers to nothing."""
    value = doc
    for depth, token in enumerate(tokens):
        if isinstance(value, dict):
            if token not in value:
                raise PatchError(f"{label}: path {_render_pointer(tokens)!r} does not exist: no "
                                 f"member {token!r} in the object at "
                                 f"{_render_pointer(tokens[:depth])!r}")
            value = value[token]
        elif isinstance(value, list):
            value = value[_array_index(token, value, label, tokens[: depth + 1], for_add=False)]
        else:
            raise PatchError(f"{label}: path {_render_pointer(tokens)!r} does not exist: the "
                             f"value at {_render_pointer(tokens[:depth])!r} is a {_kind(value)}, "
                             "not an object or array")
    return value


def _parent(doc: Any, tokens: list[str], label: str) -> Any:
    parent = _get(doc, tokens[:-1], label)
    if not isinstance(parent, dict | list):
        raise PatchError(f"{label}: the value at {_render_pointer(tokens[:-1])!r} is a "
                         f"{_kind(parent)}, not an object or array")
    return parent


def _add(doc: Any, tokens: list[str], value: Any, label: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, label)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_array_index(tokens[-1], parent, label, tokens, for_add=True), value)
    return doc


def _remove(doc: Any, tokens: list[str], label: str) -> Any:
    if not tokens:
        raise PatchError(f"{label}: cannot remove the whole document")
    parent = _parent(doc, tokens, label)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"{label}: path {_render_pointer(tokens)!r} does not exist: no "
                             f"member {tokens[-1]!r} to remove")
        del parent[tokens[-1]]
    else:
        del parent[_array_index(tokens[-1], parent, label, tokens, for_add=False)]
    return doc


def _op_add(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    return _add(doc, path, copy.deepcopy(_member(op, "value", label)), label)


def _op_remove(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    return _remove(doc, path, label)


def _op_replace(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    value = copy.deepcopy(_member(op, "value", label))
    _get(doc, path, label)  # must exist
    if not path:
        return value
    parent = _parent(doc, path, label)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    else:
        parent[_array_index(path[-1], parent, label, path, for_add=False)] = value
    return doc


def _op_move(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    source = _pointer(_member(op, "from", label), label)
    value = _get(doc, source, label)
    if source == path:
        return doc
    if path[: len(source)] == source:
        raise PatchError(f"{label}: cannot move {_render_pointer(source)!r} into one of its "
                         "own children")
    return _add(_remove(doc, source, label), path, value, label)


def _op_copy(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    source = _pointer(_member(op, "from", label), label)
    return _add(doc, path, copy.deepcopy(_get(doc, source, label)), label)


def _op_test(doc: Any, path: list[str], op: dict[str, Any], label: str) -> Any:
    expected = _member(op, "value", label)
    actual = _get(doc, path, label)
    if not _equal(actual, expected):
        raise PatchError(f"{label}: test failed: the value is {_short(actual)}, "
                         f"not {_short(expected)}")
    return doc


_OPS: Final[dict[str, Callable[[Any, list[str], dict[str, Any], str], Any]]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}


# ---------------------------------------------------------------------------------------------
# The merge-key table: patchStrategy / patchMergeKey struct tags of the served kinds
# ---------------------------------------------------------------------------------------------

MergeRule = tuple[str, str]
"""(patch strategy, merge key), as the Go struct tags spell them: strategy "merge" or
"merge,retainKeys"; the merge key is "" for lists of primitives that merge as sets."""

Path = tuple[str, ...]
"""A field path from the object root; "*" steps into the elements of a list."""


def _under(prefix: Path, rules: Mapping[Path, MergeRule]) -> dict[Path, MergeRule]:
    return {prefix + path: rule for path, rule in rules.items()}


_OBJECT_META: Final[dict[Path, MergeRule]] = {
    ("finalizers",): ("merge", ""),
    ("ownerReferences",): ("merge", "uid"),
}

_CONTAINER: Final[dict[Path, MergeRule]] = {  # Container and EphemeralContainerCommon
    ("ports",): ("merge", "containerPort"),
    ("env",): ("merge", "name"),
    ("volumeMounts",): ("merge", "mountPath"),
    ("volumeDevices",): ("merge", "devicePath"),
}

_POD_SPEC: Final[dict[Path, MergeRule]] = {
    ("volumes",): ("merge,retainKeys", "name"),
    ("initContainers",): ("merge", "name"),
    ("containers",): ("merge", "name"),
    ("ephemeralContainers",): ("merge", "name"),
    ("imagePullSecrets",): ("merge", "name"),
    ("hostAliases",): ("merge", "ip"),
    ("topologySpreadConstraints",): ("merge", "topologyKey"),
    ("resourceClaims",): ("merge,retainKeys", "name"),
    ("schedulingGates",): ("merge", "name"),
    ("evictionResponders",): ("merge", "name"),
    **_under(("initContainers", "*"), _CONTAINER),
    **_under(("containers", "*"), _CONTAINER),
    **_under(("ephemeralContainers", "*"), _CONTAINER),
    **_under(("volumes", "*", "ephemeral", "volumeClaimTemplate", "metadata"), _OBJECT_META),
}

_POD_STATUS: Final[dict[Path, MergeRule]] = {
    ("conditions",): ("merge", "type"),
    ("podIPs",): ("merge", "ip"),
    ("hostIPs",): ("merge", "ip"),
    ("resourceClaimStatuses",): ("merge,retainKeys", "name"),
    ("nodeAllocatableResourceClaimStatuses",): ("merge", "resourceClaimName"),
    ("nodeAllocatableResourceClaimStatuses", "*", "mapping"): ("merge", "name"),
    ("nodeAllocatableResourceClaimStatuses", "*", "overhead"): ("merge", "name"),
}


def _kind_rules(**sections: Mapping[Path, MergeRule]) -> dict[Path, MergeRule]:
    rules = _under(("metadata",), _OBJECT_META)
    for name, section in sections.items():
        rules.update(_under((name,), section))
    return rules


MERGE_KEYS: Final[dict[tuple[str, str], dict[Path, MergeRule]]] = {
    ("v1", "Pod"): _kind_rules(spec=_POD_SPEC, status=_POD_STATUS),
    ("v1", "Service"): _kind_rules(
        spec={("ports",): ("merge", "port")},
        status={("conditions",): ("merge", "type")},
    ),
    ("v1", "Node"): _kind_rules(
        spec={("podCIDRs",): ("merge", "")},
        status={("conditions",): ("merge", "type"), ("addresses",): ("merge", "type")},
    ),
    ("v1", "Namespace"): _kind_rules(status={("conditions",): ("merge", "type")}),
    ("v1", "Secret"): _kind_rules(),
    ("v1", "Event"): _kind_rules(),
    ("discovery.k8s.io/v1", "EndpointSlice"): _kind_rules(),
    ("networking.k8s.io/v1", "Ingress"): _kind_rules(),
    ("networking.k8s.io/v1", "IngressClass"): _kind_rules(),
    ("networking.k8s.io/v1", "NetworkPolicy"): _kind_rules(),
}
"""(apiVersion, kind) -> field path -> (strategy, merge key), for every list field of the kind
whose Go struct tag says patchStrategy "merge". Lists not listed are atomic: a patch replaces
them. Lists under an atomic list (say the fields of `status.containerStatuses[*]`) are left out,
since a strategic merge never looks inside an atomic list."""

_ANY_KIND: Final[dict[Path, MergeRule]] = _kind_rules()


def merge_strategy(api_version: str, kind: str, path: tuple[str, ...]) -> tuple[str, str] | None:
    """The (strategy, merge key) of the list at `path` ("*" for list elements), or None when
    that list is atomic or unknown. Kinds podnet does not serve still get ObjectMeta's rules."""
    return MERGE_KEYS.get((api_version, kind), _ANY_KIND).get(path)


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"
_DROP: Final = object()  # what _fresh returns for a value that must not appear at all


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], api_version: str,
                          kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of the given apiVersion/kind."""
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, not {_kind(patch)}",
                         400)
    if not isinstance(target, dict):
        raise PatchError(f"cannot patch a {_kind(target)}: the target must be a JSON object")
    rules = MERGE_KEYS.get((api_version, kind), _ANY_KIND)
    return _StrategicMerge(rules).merge_map(copy.deepcopy(target), copy.deepcopy(patch), (), "")


def _is_directive_key(key: str) -> bool:
    return key == _RETAIN_KEYS or key.startswith((_SET_ORDER, _DELETE_FROM))


def _fresh(value: Any, where: str) -> Any:
    """What a patch value becomes where there is nothing to merge it with (a new key, a new
    list element, an atomic list, a change of type): nulls in objects are dropped, `$patch:
    delete` drops the object, `$patch: replace|merge` keep the rest, and list elements
    carrying `$patch` and the other directive keys are dropped. Returns _DROP if the value
    itself must go. (Kubernetes drops `$patch: replace` objects here too, and keeps directives
    inside new list elements; both reach its typed decoding as garbage.)"""
    if isinstance(value, dict):
        directive = value.get(_PATCH, _MISSING)
        if directive is not _MISSING:
            _check_map_directive(directive, where)
            if directive == "delete":
                return _DROP
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or key == _PATCH or _is_directive_key(key):
                continue
            fresh = _fresh(item, _child(where, key))
            if fresh is not _DROP:
                out[key] = fresh
        return out
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            if isinstance(item, dict) and _PATCH in item:
                _check_list_directive(item[_PATCH], f"{where}[{i}]")
                continue
            fresh = _fresh(item, f"{where}[{i}]")
            if fresh is not _DROP:
                items.append(fresh)
        return items
    return value


def _check_map_directive(directive: Any, where: str) -> None:
    if directive not in ("replace", "delete", "merge"):
        raise PatchError(f"{where or 'the patch'}: unknown $patch directive {_short(directive)}; "
                         "expected replace, delete or merge")


def _check_list_directive(directive: Any, where: str) -> None:
    if directive == "merge":
        raise PatchError(f"{where}: $patch: merge is not supported as a list element (lists "
                         "with a merge strategy already merge)")
    if directive not in ("replace", "delete"):
        raise PatchError(f"{where}: unknown $patch directive {_short(directive)} in a list; "
                         "expected replace or delete")


def _go_stable_sort(items: list[Any], position: Callable[[Any], int]) -> list[Any]:
    """Sort by `position` in an order list as Kubernetes does: Go's insertion sort (what
    sort.SliceStable runs on short lists) with a comparator that says "smaller" whenever either
    item is missing from the order list (-1). When every item is found this is an ordinary
    stable sort."""
    positions = [position(item) for item in items]
    if all(p >= 0 for p in positions):
        return [item for _, item in sorted(zip(positions, items, strict=True),
                                           key=lambda pair: pair[0])]
    out = list(zip(positions, items, strict=True))
    for i in range(1, len(out)):
        j = i
        while j > 0 and (out[j][0] < 0 or out[j - 1][0] < 0 or out[j][0] < out[j - 1][0]):
            out[j], out[j - 1] = out[j - 1], out[j]
            j -= 1
    return [item for _, item in out]


class _StrategicMerge:
    """One strategic merge, with the merge-key rules of the object's kind. The merge_* methods
    modify their `original` argument (a private copy) and consume the patch (also a copy)."""

    def __init__(self, rules: Mapping[Path, MergeRule]) -> None:
        self.rules = rules

    def rule(self, path: Path) -> tuple[bool, str]:
        """(merges?, merge key) of the list at `path`."""
        found = self.rules.get(path)
        if found is None or "merge" not in found[0].split(","):
            return False, ""
        return True, found[1]

    # -- maps ----------------------------------------------------------------------------------

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: Path,
                  where: str) -> dict[str, Any]:
        """Merge a patch map into a map: `$patch` first, then `$retainKeys`, then the lists
        named by `$setElementOrder/...`, then the other keys, then the
        `$deleteFromPrimitiveList/...` lists."""
        directive = patch.pop(_PATCH, _MISSING)
        if directive is not _MISSING:
            _check_map_directive(directive, where)
            if directive == "replace":
                fresh = _fresh(patch, where)
                return fresh if isinstance(fresh, dict) else {}
            if directive == "delete":
                return {}
        self.retain_keys(original, patch, where)
        self.set_element_orders(original, patch, path, where)
        deletions = []
        for key, value in patch.items():
            if key.startswith(_DELETE_FROM):
                deletions.append((key[len(_DELETE_FROM):], value))
            else:
                self.merge_key(original, key, value, path, where)
        for key, value in deletions:
            self.delete_from_list(original, key, value, where)
        return original

    def merge_key(self, original: dict[str, Any], key: str, value: Any, path: Path,
                  where: str) -> None:
        here = _child(where, key)
        if value is None:
            original.pop(key, None)
            return
        current = original.get(key, _MISSING)
        if current is _MISSING or _kind(current) != _kind(value):
            fresh = _fresh(value, here)
            if fresh is _DROP:
                original.pop(key, None)
            else:
                original[key] = fresh
        elif isinstance(value, dict):
            original[key] = self.merge_map(current, value, (*path, key), here)
        elif isinstance(value, list):
            original[key] = self.merge_list(current, value, (*path, key), here)
        else:
            original[key] = value

    def retain_keys(self, original: dict[str, Any], patch: dict[str, Any], where: str) -> None:
        """$retainKeys: drop every key of the original map not in the list. Every key the patch
        sets must be in the list too."""
        keep = patch.pop(_RETAIN_KEYS, _MISSING)
        if keep is _MISSING:
            return
        if not isinstance(keep, list):
            raise PatchError(f"{where or 'the patch'}: $retainKeys must be a list of field "
                             f"names, not {_kind(keep)}", 400)
        kept = {_identity(k) for k in keep}
        for key, value in patch.items():
            if value is None or key.startswith((_SET_ORDER, _DELETE_FROM)):
                continue
            if _identity(key) not in kept:
                raise PatchError(f"{where or 'the patch'}: field {key!r} is set by the patch but "
                                 f"not listed in $retainKeys {_short(keep)}", 400)
        for key in [k for k in original if _identity(k) not in kept]:
            del original[key]

    def delete_from_list(self, original: dict[str, Any], key: str, value: Any,
                         where: str) -> None:
        """$deleteFromPrimitiveList/<key>: remove these values from the list at <key>."""
        here = _child(where, _DELETE_FROM + key)
        if value is None:  # as in Kubernetes, a null deletes the list itself
            original.pop(key, None)
            return
        if not isinstance(value, list):
            raise PatchError(f"{here}: must be a list of values to delete, not {_kind(value)}",
                             400)
        current = original.get(key)
        if not isinstance(current, list):
            return
        doomed = {_identity(v) for v in value}
        original[key] = [v for v in current if _identity(v) not in doomed]

    # -- lists -----------------------------------------------------------------------------

    def merge_list(self, original: list[Any], patch: list[Any], path: Path,
                   where: str) -> list[Any]:
        """Merge a patch list into a list: atomic lists are replaced, primitive merge lists
        are unioned, object merge lists are merged element-wise by their merge key."""
        merges, merge_key = self.rule(path)
        if not merges:
            fresh = _fresh(patch, where)
            return fresh if isinstance(fresh, list) else []
        if not original and not patch:
            return original
        element = self.element_kind(where, original, patch)
        if element != "object":
            merged = self.dedupe(original + patch)
            return self.normalize(merged, patch, original, "")
        if not merge_key:
            raise PatchError(f"{where}: cannot merge a list of objects that has no merge key")
        original, patch = self.special_elements(original, patch, merge_key, where)
        merged = self.merge_elements(original, patch, merge_key, path, where)
        return self.normalize(merged, patch, original, merge_key, where)

    @staticmethod
    def element_kind(where: str, *lists: list[Any]) -> str:
        """The one JSON type of all elements of the lists ("" when they are all empty)."""
        kinds = {_kind(v) for items in lists for v in items}
        if "array" in kinds:
            raise PatchError(f"{where}: lists of lists cannot be merged")
        if len(kinds) > 1:
            raise PatchError(f"{where}: list elements are not all of the same type "
                             f"({', '.join(sorted(kinds))})")
        return kinds.pop() if kinds else ""

    @staticmethod
    def dedupe(items: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        out = []
        for item in items:
            identity = _identity(item)
            if identity not in seen:
                seen.add(identity)
                out.append(item)
        return out

    def special_elements(self, original: list[Any], patch: list[Any], merge_key: str,
                         where: str) -> tuple[list[Any], list[Any]]:
        """Apply the `$patch` list elements: delete drops the original elements with that key,
        replace makes the rest of the patch the whole list. Returns (original, patch) without
        them."""
        plain = []
        replace = False
        for i, item in enumerate(patch):
            if not isinstance(item, dict) or _PATCH not in item:
                plain.append(item)
                continue
            directive = item[_PATCH]
            _check_list_directive(directive, f"{where}[{i}]")
            if directive == "replace":
                replace = True
            elif merge_key not in item:
                raise PatchError(f"{where}[{i}]: $patch: delete needs the merge key "
                                 f"{merge_key!r} to say which element to delete: {_short(item)}")
            else:
                doomed = _identity(item[merge_key])
                original = [e for e in original
                            if not (isinstance(e, dict) and merge_key in e
                                    and _identity(e[merge_key]) == doomed)]
        if replace:
            fresh = _fresh(plain, where)
            return (fresh if isinstance(fresh, list) else []), []
        return original, plain

    def merge_elements(self, original: list[Any], patch: list[Any], merge_key: str,
                       path: Path, where: str) -> list[Any]:
        """Merge each patch element into the original element with the same merge key value,
        or append it."""
        merged = list(original)
        for i, item in enumerate(patch):
            if merge_key not in item:
                raise PatchError(f"{where}[{i}]: list element {_short(item)} has no merge key "
                                 f"{merge_key!r}")
            identity = _identity(item[merge_key])
            here = f"{where}[{merge_key}={_short(item[merge_key], 40)}]"
            for j, existing in enumerate(merged):
                if not isinstance(existing, dict):
                    raise PatchError(f"{where}[{j}]: the list element {_short(existing)} is not "
                                     "an object")
                if merge_key in existing and _identity(existing[merge_key]) == identity:
                    merged[j] = self.merge_map(existing, item, (*path, "*"), here)
                    break
            else:
                fresh = _fresh(item, here)
                if fresh is not _DROP:
                    merged.append(fresh)
        return merged

    # -- ordering ----------------------------------------------------------------------------

    def normalize(self, merged: list[Any], patch_order: list[Any], server_order: list[Any],
                  merge_key: str, where: str = "") -> list[Any]:
        """Kubernetes' order for a merged list: the items the patch names, in the patch's order,
        interleaved with the server-only items, in the server's order; a server-only item goes
        before a patch item only if both were in the server list and it came first there."""
        key = self.order_key(merge_key, where, merged, patch_order, server_order)
        named = {key(v) for v in patch_order}
        in_patch = [v for v in merged if key(v) in named]
        server_only = [v for v in merged if key(v) not in named]
        in_patch = _go_stable_sort(in_patch, self.position(patch_order, key))
        server_position = self.position(server_order, key)
        server_only = _go_stable_sort(server_only, server_position)
        out = []
        i = j = 0
        while i < len(server_only) or j < len(in_patch):
            if j >= len(in_patch):
                out.append(server_only[i])
                i += 1
            elif i >= len(server_only):
                out.append(in_patch[j])
                j += 1
            else:
                left, right = server_position(server_only[i]), server_position(in_patch[j])
                if 0 <= left < right:
                    out.append(server_only[i])
                    i += 1
                else:
                    out.append(in_patch[j])
                    j += 1
        return out

    @staticmethod
    def order_key(merge_key: str, where: str, *lists: list[Any]) -> Callable[[Any], Any]:
        """How list items are told apart for ordering: by merge key value, or whole value."""
        if not merge_key:
            return _identity
        for items in lists:
            for item in items:
                if not isinstance(item, dict) or merge_key not in item:
                    raise PatchError(f"{where}: list element {_short(item)} has no merge key "
                                     f"{merge_key!r}")
        return lambda item: _identity(item[merge_key])

    @staticmethod
    def position(order: list[Any], key: Callable[[Any], Any]) -> Callable[[Any], int]:
        first: dict[Any, int] = {}
        for i, item in enumerate(order):
            first.setdefault(key(item), i)
        return lambda item: first.get(key(item), -1)

    def set_element_orders(self, original: dict[str, Any], patch: dict[str, Any], path: Path,
                           where: str) -> None:
        """$setElementOrder/<field>: merge the patch list for <field> (if any) and order the
        result: the listed items in the listed order, others where Kubernetes puts them."""
        for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
            order = patch.pop(directive)
            field = directive[len(_SET_ORDER):]
            here = _child(where, directive)
            if not isinstance(order, list):
                raise PatchError(f"{here}: must be a list, not {_kind(order)}", 400)
            current = original.get(field, _MISSING)
            incoming = patch.pop(field, _MISSING)
            for name, value in (("object's", current), ("patch's", incoming)):
                if value is not _MISSING and not isinstance(value, list):
                    raise PatchError(f"{here}: the {name} {field!r} is a {_kind(value)}, "
                                     "not a list")
            if current is _MISSING and incoming is _MISSING:
                continue
            merges, merge_key = self.rule((*path, field))
            if incoming is not _MISSING:
                self.check_order(incoming, order, merge_key, here)
            if incoming is _MISSING:
                merged = current
            elif current is _MISSING:
                fresh = _fresh(incoming, _child(where, field))
                merged = fresh if isinstance(fresh, list) else []
            else:
                merged = self.merge_list(current, incoming, (*path, field), _child(where, field))
            server = [] if current is _MISSING else current
            if merges and merge_key and current is not _MISSING and incoming is not _MISSING:
                server = self.server_view(current, incoming, merge_key)
            element = self.element_kind(_child(where, field), server,
                                        [] if incoming is _MISSING else incoming)
            if element == "" or (element == "object" and not merges):
                original[field] = merged
                continue
            original[field] = self.normalize(merged, order, server, merge_key, here)

    @staticmethod
    def server_view(current: list[Any], incoming: list[Any], merge_key: str) -> list[Any]:
        """The live list as Kubernetes sees it when it orders by $setElementOrder after merging:
        its merge deletes elements by shifting the rest left within the same Go slice and then
        appends new elements into the freed slots, so those slots now hold the new elements
        (and, if fewer were added, stale copies). This decides where server-only elements go
        relative to new ones, so it is reproduced here."""
        view = list(current)
        length = len(view)

        def find(items: list[Any], item: dict[str, Any]) -> int:
            identity = _identity(item[merge_key])
            for i, existing in enumerate(items):
                if (isinstance(existing, dict) and merge_key in existing
                        and _identity(existing[merge_key]) == identity):
                    return i
            return -1

        plain = [v for v in incoming if isinstance(v, dict) and _PATCH not in v]
        for item in incoming:
            if not (isinstance(item, dict) and item.get(_PATCH) == "delete"
                    and merge_key in item):
                continue
            while (k := find(view[:length], item)) >= 0:
                view[k:length - 1] = view[k + 1:length]
                length -= 1
        if any(isinstance(v, dict) and v.get(_PATCH) == "replace" for v in incoming):
            return view
        merged = view[:length]
        for item in plain:
            if merge_key not in item or find(merged, item) >= 0:
                continue
            if length < len(view):
                view[length] = item
            length += 1
            merged.append(item)
        return view

    @staticmethod
    def check_order(incoming: list[Any], order: list[Any], merge_key: str, where: str) -> None:
        """The patch list must name its items in the $setElementOrder order (deletions and
        other directive elements aside)."""
        if not order or not incoming:
            return

        def identity(item: Any) -> Any:
            if not merge_key:
                return _identity(item)
            if not isinstance(item, dict) or merge_key not in item:
                raise PatchError(f"{where}: list element {_short(item)} has no merge key "
                                 f"{merge_key!r}")
            return _identity(item[merge_key])

        # Kubernetes' walk, quirks included: deletions are set aside, other directive elements
        # are skipped, but only while there are still listed items left to match.
        items = [v for v in incoming
                 if not (merge_key and isinstance(v, dict) and v.get(_PATCH) == "delete")]
        p = s = 0
        while p < len(items) and s < len(order):
            if isinstance(items[p], dict) and _PATCH in items[p]:
                p += 1
                continue
            if identity(items[p]) == identity(order[s]):
                p += 1
            s += 1
        if p < len(items):
            raise PatchError(f"{where}: the patch list {_short(incoming)} does not follow "
                             f"the order {_short(order)}")
