"""Printing API objects the way kubectl prints them: server-side Tables, YAML, JSON and names.

Tables follow kubectl's tab writer: upper-case headers, left-aligned columns padded to the
widest cell plus three spaces (at least six wide), the last column unpadded; columns with a
priority above 0 only with `-o wide`; a NAMESPACE column first for `-A`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from podnet.api.resources import Resource

MIN_WIDTH = 6
PADDING = 3
_BREAK_CHARS = "\f\n\r"


# -- names ------------------------------------------------------------------------------------


def kind_ref(res: Resource) -> str:
    """How kubectl names a kind in its messages: `service`, `ingress.networking.k8s.io`."""
    return f"{res.singular}.{res.group}" if res.group else res.singular


def object_ref(res: Resource, name: str) -> str:
    """`service/web`, `ingress.networking.k8s.io/web` (what `-o name` and apply print)."""
    return f"{kind_ref(res)}/{name}"


# -- tables -----------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """One table cell as kubectl prints it (Go's fmt.Sprint for the JSON types)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"))
    cut = min((i for i in (text.find(c) for c in _BREAK_CHARS) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut] + "..."


def tabulate(rows: Sequence[Sequence[str]]) -> str:
    """Align rows into columns like Go's tabwriter(minwidth 6, padding 3): every column but
    the last is padded to max(widest cell + 3, 6)."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [MIN_WIDTH] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + PADDING)
    lines = []
    for r in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        lines.append("".join(parts) + (r[-1] if r else ""))
    return "\n".join(lines) + "\n"


def _labels_text(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _row_metadata(row: Mapping[str, Any]) -> Mapping[str, Any]:
    obj = row.get("object")
    if isinstance(obj, Mapping):
        meta = obj.get("metadata")
        if isinstance(meta, Mapping):
            return meta
    return {}


def table_rows(
    table: Mapping[str, Any],
    *,
    wide: bool = False,
    with_namespace: bool = False,
    show_labels: bool = False,
    headers: bool = True,
) -> list[list[str]]:
    """The visible cells of a meta.k8s.io Table, decorated as kubectl decorates them; no rows
    at all (not even headers) when the table is empty."""
    columns = list(table.get("columnDefinitions") or [])
    rows = list(table.get("rows") or [])
    if not rows:
        return []
    visible = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    out: list[list[str]] = []
    if headers:
        head = [str(columns[i].get("name", "")).upper() for i in visible]
        out.append((["NAMESPACE"] if with_namespace else []) + head
                   + (["LABELS"] if show_labels else []))
    for row in rows:
        cells = list(row.get("cells") or [])
        meta = _row_metadata(row)
        line = [cell_text(cells[i]) if i < len(cells) else "" for i in visible]
        if with_namespace:
            line.insert(0, str(meta.get("namespace", "")))
        if show_labels:
            line.append(_labels_text(meta.get("labels")))
        out.append(line)
    return out


def format_table(table: Mapping[str, Any], **options: bool) -> str:
    """A Table as kubectl prints it (see `table_rows` for the options); "" when empty."""
    return tabulate(table_rows(table, **options))


def merge_tables(tables: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One Table with the rows of several (the tables of single objects of one kind)."""
    merged: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                              "columnDefinitions": [], "rows": []}
    for t in tables:
        if not merged["columnDefinitions"]:
            merged["columnDefinitions"] = list(t.get("columnDefinitions") or [])
        merged["rows"].extend(t.get("rows") or [])
    return merged


def fallback_table(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A NAME-only Table for a server that answered with objects instead of a Table."""
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        rows.append({"cells": [meta.get("name", "")], "object": {"metadata": meta}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name", "type": "string", "format": "name"}],
            "rows": rows}


# -- documents --------------------------------------------------------------------------------


def with_type(res: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object with apiVersion and kind set (list items come without them)."""
    out = {"apiVersion": res.api_version, "kind": res.kind}
    out.update(obj)
    out["apiVersion"], out["kind"] = res.api_version, res.kind
    return out


def as_list(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The `List` kubectl prints for several objects."""
    return {"apiVersion": "v1", "items": [dict(i) for i in items], "kind": "List",
            "metadata": {"resourceVersion": ""}}


class _Dumper(yaml.SafeDumper):
    def choose_scalar_style(self) -> str:
        # Quote as Go's YAML does: double quotes where a plain scalar would not do.
        style = str(super().choose_scalar_style() or "")
        return '"' if style == "'" else style


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(obj: Any) -> str:
    """YAML as kubectl writes it: keys sorted, block style, multi-line strings as blocks."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)


def to_json(obj: Any) -> str:
    """JSON as kubectl writes it: keys sorted, indented by four spaces."""
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
