"""`podnet apply` and `podnet delete -f`: reading manifests and client-side apply.

Apply works as kubectl's client-side apply: an object that does not exist is created with the
`kubectl.kubernetes.io/last-applied-configuration` annotation; one that exists is sent a JSON
merge patch computed three-way from that annotation (what was applied last time), the new
manifest and the live object. Fields the manifest dropped since the last apply are set to
null; fields the server or others set and the manifest never mentioned are left alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from podnet.api.resources import Resource, by_kind
from podnet.cli.output import object_ref
from podnet.client.http import ApiError, Client

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# The C loader is much faster when libyaml is there.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """A manifest that cannot be read, parsed or mapped to a served kind."""


@dataclass(frozen=True)
class Manifest:
    """One document of a file: `doc` when it parsed, `error` (kubectl's wording) when not."""

    source: str
    doc: dict[str, Any] | None = None
    error: str | None = None


# -- reading ----------------------------------------------------------------------------------


def manifest_files(path: str) -> list[Path]:
    """The files behind a -f argument: the file itself, or a directory's *.yaml, *.yml and
    *.json files, sorted by name."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
    if not p.exists():
        raise ManifestError(f'the path "{path}" does not exist')
    return [p]


def parse_documents(text: str, source: str) -> list[Manifest]:
    """The objects in a multi-document YAML (or JSON) text; `List` kinds are flattened."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as e:
        return [Manifest(source, error=f'error: error parsing {source}: {e}')]
    out: list[Manifest] = []
    for d in docs:
        if not isinstance(d, dict):
            out.append(Manifest(source, error=f'error: error validating "{source}": '
                                              "error validating data: not an object"))
        elif str(d.get("kind", "")).endswith("List") and isinstance(d.get("items"), list):
            out.extend(parse_documents_from_items(d["items"], source))
        else:
            out.append(Manifest(source, doc=d))
    return out


def parse_documents_from_items(items: list[Any], source: str) -> list[Manifest]:
    return [Manifest(source, doc=i) if isinstance(i, dict) else
            Manifest(source, error=f'error: error validating "{source}": not an object')
            for i in items]


def load_manifests(paths: list[str], stdin: TextIO | None = None) -> list[Manifest]:
    """Every document of every -f argument, in order (`-` reads standard input)."""
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            out.extend(parse_documents((stdin or sys.stdin).read(), "STDIN"))
            continue
        try:
            files = manifest_files(path)
        except ManifestError as e:
            out.append(Manifest(path, error=f"error: {e}"))
            continue
        for f in files:
            try:
                text = f.read_text()
            except OSError as e:
                out.append(Manifest(str(f), error=f"error: {e}"))
                continue
            out.extend(parse_documents(text, str(f)))
    return out


# -- mapping documents to resources -------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a document goes: its resource, namespace (None if cluster-scoped) and name."""

    res: Resource
    namespace: str | None
    name: str


def doc_target(doc: Mapping[str, Any], source: str, namespace: str,
               explicit_namespace: bool) -> Target:
    """Map a document to its resource, namespace and name, or raise ManifestError."""
    missing = [f"{f} not set" for f in ("apiVersion", "kind") if not doc.get(f)]
    if missing:
        raise ManifestError(f'error: error validating "{source}": error validating data: '
                            f"[{', '.join(missing)}]")
    raw_meta = doc.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name") or "")
    api_version, kind = str(doc["apiVersion"]), str(doc["kind"])
    res = by_kind(api_version, kind)
    if res is None:
        raise ManifestError(
            f'error: resource mapping not found for name: "{name}" namespace: '
            f'"{meta.get("namespace", "")}" from "{source}": no matches for kind "{kind}" in '
            f'version "{api_version}"\nensure CRDs are installed first')
    if not name:
        raise ManifestError(f'error: error validating "{source}": error validating data: '
                            "metadata.name not set")
    if not res.namespaced:
        return Target(res, None, name)
    doc_ns = str(meta.get("namespace") or "")
    if doc_ns and explicit_namespace and doc_ns != namespace:
        raise ManifestError(
            f'error: the namespace from the provided object "{doc_ns}" does not match the '
            f'namespace "{namespace}". You must pass \'--namespace={doc_ns}\' to perform this '
            "operation.")
    return Target(res, doc_ns or namespace, name)


def normalized(doc: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """The document with its namespace filled in (namespaced kinds) or dropped (others)."""
    out = json.loads(json.dumps(doc))
    meta = out.setdefault("metadata", {})
    if target.namespace is None:
        meta.pop("namespace", None)
    else:
        meta["namespace"] = target.namespace
    return dict(out)


# -- the three-way merge ------------------------------------------------------------------------


def last_applied_value(doc: Mapping[str, Any]) -> str:
    """What goes into the last-applied annotation: the document without that annotation,
    as compact JSON with sorted keys and a final newline (as kubectl writes it)."""
    out = json.loads(json.dumps(doc))
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def with_last_applied(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as apply sends it: carrying its own last-applied annotation."""
    value = last_applied_value(doc)
    out = json.loads(value)
    out["metadata"]["annotations"][LAST_APPLIED] = value
    return dict(out)


def last_applied_of(live: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration last applied to a live object ({} when it has none)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(LAST_APPLIED)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def contained(want: Any, have: Any) -> bool:
    """True when every field of `want` is in `have` with the same value (lists element by
    element): `have` is `want` plus what the server defaulted."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contained(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return (isinstance(have, list) and len(want) == len(have)
                and all(contained(a, b) for a, b in zip(want, have, strict=True)))
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    return bool(want == have)


def three_way_merge_patch(original: Mapping[str, Any], modified: Mapping[str, Any],
                          current: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) taking `current` to `modified`:

    - a field in `original` (last applied) but no longer in `modified` is deleted (null),
      if the live object still has it;
    - a field of `modified` missing from or different in `current` is set;
    - maps are merged recursively; lists are replaced whole, unless the list is the one
      applied last time and the live list only adds defaulted fields to its elements;
    - fields only in `current` (set by the server or by others) are left alone.
    """
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    for key, want in modified.items():
        have = current.get(key)
        if key not in current:
            patch[key] = want
        elif isinstance(want, dict) and isinstance(have, dict):
            before = original.get(key)
            sub = three_way_merge_patch(before if isinstance(before, dict) else {}, want, have)
            if sub:
                patch[key] = sub
        elif isinstance(want, list):
            if not (original.get(key) == want and contained(want, have)) and want != have:
                patch[key] = want
        elif not contained(want, have):
            patch[key] = want
    return patch


# -- running ----------------------------------------------------------------------------------


def _server_error(e: ApiError, what: str, source: str) -> ManifestError:
    prefix = f"Error from server ({e.reason})" if e.reason else "Error from server"
    return ManifestError(f'{prefix}: error when {what} "{source}": {e.message}')


def apply_one(client: Client, target: Target, doc: Mapping[str, Any], source: str) -> str:
    """Apply one normalized document; returns created, configured or unchanged, or raises
    ManifestError worded as kubectl words it."""
    modified = with_last_applied(doc)
    try:
        live = client.get(target.res, target.namespace, target.name)
    except ApiError as e:
        if e.status != 404:
            raise _server_error(e, "retrieving current configuration of", source) from e
        try:
            client.create(target.res, target.namespace, modified)
        except ApiError as e2:
            raise _server_error(e2, "creating", source) from e2
        return "created"
    patch = three_way_merge_patch(last_applied_of(live), modified, live)
    if not patch:
        return "unchanged"
    try:
        client.patch(target.res, target.namespace, target.name, patch, "merge")
    except ApiError as e:
        raise _server_error(e, "patching", source) from e
    return "configured"


def apply_manifests(client: Client, manifests: list[Manifest], namespace: str,
                    explicit_namespace: bool, out: TextIO, err: TextIO) -> int:
    """Apply every document, reporting each as kubectl does; 1 if any failed, else 0.
    A document that fails does not stop the others."""
    failed = False
    for m in manifests:
        try:
            if m.doc is None:
                raise ManifestError(m.error or f"error: cannot read {m.source}")
            target = doc_target(m.doc, m.source, namespace, explicit_namespace)
            result = apply_one(client, target, normalized(m.doc, target), m.source)
        except ManifestError as e:
            failed = True
            print(str(e), file=err, flush=True)
            continue
        print(f"{object_ref(target.res, target.name)} {result}", file=out, flush=True)
    return 1 if failed else 0
