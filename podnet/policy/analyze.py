"""The analyzer: who can reach whom under the compiled policy model, and why (pure, no I/O).

`matrix` evaluates every (source pod, destination pod, protocol, port) cell with the model;
`format_table`, `to_json` and `to_csv` print it; `explain` gives the verdict of one connection
with the policies and rules that decided each side. `podnet policy matrix|explain` prints these.

The table has one block per target (`80/TCP`): rows are sources, columns destinations,
"." allowed, "X" denied, "-" the destination does not serve that target (only when the targets
are each pod's declared ports). With more than COLUMN_KEYS_MAX pods, columns are numbered
(digits written top to bottom) and each row starts with its number, so a cell is one character
wide and 300 pods stay readable.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from podnet.policy.model import (
    PROTOCOLS,
    Direction,
    IpRange,
    PodPolicy,
    PolicyModel,
    decide,
    int_to_ip,
    resolve_endpoint,
)

Target = tuple[str, int]  # (protocol, port)
Cell = tuple[str, str, str, int]  # (source key, destination key, protocol, port)

COLUMN_KEYS_MAX = 16
ALLOWED, DENIED, NOT_SERVED = ".", "X", "-"


@dataclass(frozen=True)
class Matrix:
    """Reachability between pods. A cell missing from `cells` is a target the destination does
    not serve (only when the targets were each pod's declared ports)."""

    pods: tuple[str, ...]  # the sources and destinations, in the order shown
    targets: tuple[Target, ...]  # in the order shown
    cells: Mapping[Cell, bool]


def _target_order(target: Target) -> tuple[int, int, str]:
    protocol, port = target
    rank = PROTOCOLS.index(protocol) if protocol in PROTOCOLS else len(PROTOCOLS)
    return (port, rank, protocol)


def _declared(model: PolicyModel, key: str) -> set[Target]:
    return {(p.protocol, p.number) for p in model.pods[key].pod.ports}


def matrix(model: PolicyModel, pods: Sequence[str] | None = None,
           targets: Iterable[Target] | None = None) -> Matrix:
    """Every pair of `pods` (default: every pod of the model, by key) on every target
    (default: for each destination, the ports its containers declare)."""
    keys = tuple(pods) if pods is not None else tuple(sorted(model.pods))
    if targets is not None:
        wanted = tuple(dict.fromkeys(targets))
        served = {key: set(wanted) for key in keys}
    else:
        served = {key: _declared(model, key) for key in keys}
        wanted = tuple(sorted(set().union(*served.values()), key=_target_order))
    cells: dict[Cell, bool] = {}
    ips = {key: resolve_endpoint(model, key)[1] for key in keys}
    for protocol, port in wanted:
        egress = {key: _allowed_peers(model.pods[key], "egress", protocol, port) for key in keys}
        ingress = {key: _allowed_peers(model.pods[key], "ingress", protocol, port)
                   for key in keys}
        for dst in keys:
            if (protocol, port) not in served[dst]:
                continue
            for src in keys:
                cells[(src, dst, protocol, port)] = src == dst or (
                    _within(egress[src], ips[dst]) and _within(ingress[dst], ips[src]))
    return Matrix(keys, wanted, cells)


_Allowed = tuple[list[int], list[int]] | None  # merged ranges as (los, his); None: any


def _allowed_peers(policy: PodPolicy, direction: Direction, protocol: str,
                   port: int) -> _Allowed:
    """The remote addresses one side allows on protocol/port (the same verdicts as `decide`,
    computed once per pod and target instead of once per pair)."""
    isolated = policy.ingress_isolated_by if direction == "ingress" else policy.egress_isolated_by
    if not isolated:
        return None
    grants = policy.ingress if direction == "ingress" else policy.egress
    peer_sets: dict[int, tuple[IpRange, ...]] = {}  # by id: grants share their peer tuples
    for grant in grants:
        if grant.ports is None or any(r.protocol == protocol and r.lo <= port <= r.hi
                                      for r in grant.ports):
            if grant.peers is None:
                return None
            peer_sets[id(grant.peers)] = grant.peers
    los: list[int] = []
    his: list[int] = []
    for lo, hi in sorted({(r.lo, r.hi) for peers in peer_sets.values() for r in peers}):
        if los and lo <= his[-1] + 1:
            his[-1] = max(his[-1], hi)
        else:
            los.append(lo)
            his.append(hi)
    return los, his


def _within(allowed: _Allowed, ip: int) -> bool:
    if allowed is None:
        return True
    los, his = allowed
    i = bisect_right(los, ip) - 1
    return i >= 0 and his[i] >= ip


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _mark(m: Matrix, src: str, dst: str, target: Target) -> str:
    allowed = m.cells.get((src, dst, *target))
    return NOT_SERVED if allowed is None else ALLOWED if allowed else DENIED


def _keyed_block(m: Matrix, target: Target) -> list[str]:
    """Columns headed by the destination keys; fits a 9x9 e2e matrix."""
    width = max(len(k) for k in m.pods)
    label = max(width, len("from\\to"))
    lines = ["from\\to".ljust(label) + " " + " ".join(k.ljust(width) for k in m.pods)]
    for src in m.pods:
        marks = " ".join(_mark(m, src, dst, target).ljust(width) for dst in m.pods)
        lines.append(src.ljust(label) + " " + marks)
    return [line.rstrip() for line in lines]


def _numbered_block(m: Matrix, target: Target) -> list[str]:
    """Columns numbered (digits top to bottom), one character per cell, a space every ten."""
    count = len(m.pods)
    digits = len(str(count - 1))
    label = digits + 1 + max(len(k) for k in m.pods)
    lines: list[str] = []
    for place in range(digits - 1, -1, -1):
        row = [str(i // 10**place % 10) if i >= 10**place or place == 0 else " "
               for i in range(count)]
        lines.append(" " * label + "  " + _grouped(row))
    for i, src in enumerate(m.pods):
        marks = [_mark(m, src, dst, target) for dst in m.pods]
        lines.append(f"{i:>{digits}} {src}".ljust(label) + "  " + _grouped(marks))
    return [line.rstrip() for line in lines]


def _grouped(chars: list[str]) -> str:
    return " ".join("".join(chars[i:i + 10]) for i in range(0, len(chars), 10))


def format_table(m: Matrix, *, numbered: bool | None = None) -> str:
    """One block per target, headed `80/TCP`, blocks separated by a blank line.

    numbered: None chooses by size (numbered columns above COLUMN_KEYS_MAX pods)."""
    if not m.pods or not m.targets:
        return "(no pods)\n" if not m.pods else "(no targets)\n"
    use_numbers = len(m.pods) > COLUMN_KEYS_MAX if numbered is None else numbered
    block = _numbered_block if use_numbers else _keyed_block
    parts = ["\n".join([f"{port}/{protocol}", *block(m, (protocol, port))])
             for protocol, port in m.targets]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# JSON and CSV
# ---------------------------------------------------------------------------------------------


def _rows(m: Matrix) -> Iterable[tuple[str, str, str, int, bool]]:
    """The cells present, by source, destination, then target (the matrix's orders)."""
    for src in m.pods:
        for dst in m.pods:
            for protocol, port in m.targets:
                allowed = m.cells.get((src, dst, protocol, port))
                if allowed is not None:
                    yield src, dst, protocol, port, allowed


def to_json(m: Matrix) -> str:
    """A JSON list of {"from","to","protocol","port","allowed"}, one object a line."""
    items = [json.dumps({"from": s, "to": d, "protocol": proto, "port": port, "allowed": ok})
             for s, d, proto, port, ok in _rows(m)]
    if not items:
        return "[]\n"
    return "[\n" + ",\n".join("  " + item for item in items) + "\n]\n"


def to_csv(m: Matrix) -> str:
    """CSV with the header from,to,protocol,port,allowed (allowed is true/false)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["from", "to", "protocol", "port", "allowed"])
    for s, d, proto, port, ok in _rows(m):
        writer.writerow([s, d, proto, port, "true" if ok else "false"])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------------


def _name(end: str | int) -> str:
    return int_to_ip(end) if isinstance(end, int) else end


def explain(model: PolicyModel, src: str | int, dst: str | int, protocol: str,
            port: int) -> str:
    """Three lines: `x/a -> y/b 80/TCP: denied`, then the egress and the ingress reasons."""
    verdict = decide(model, src, dst, protocol, port)
    word = "allowed" if verdict.allowed else "denied"
    return (f"{_name(src)} -> {_name(dst)} {port}/{protocol}: {word}\n"
            f"  {verdict.egress.reason}\n"
            f"  {verdict.ingress.reason}\n")
