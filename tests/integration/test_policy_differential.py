"""Differential test: random NetworkPolicy sets, real probes against the analyzer.

Same fixture as test_policy_semantics.py (policykit.py): namespaces x, y, z (ns=<name>), pods a,
b, c in each (pod=<name>), one per node of a 3-node lab, serving 80 and 81 on TCP and UDP with
named containerPorts serve-80-tcp ... serve-81-udp.

hypothesis draws 1-4 policies over x/y/z: pod and namespace selectors (matchLabels and
matchExpressions with In/NotIn/Exists/DoesNotExist, empty ones, ones that match nothing), both
in one peer, ipBlocks over the pods' own addresses with excepts, ports by number, by name (some
with a protocol they are not declared with, some not declared at all), endPort ranges, a
protocol alone, SCTP, empty `ports`/`from`/`to` lists, empty rules, every form of policyTypes
(absent too). For each example the previous set is deleted, the new one created, enforcement
waited for, the full 9 x 9 matrix on 80/TCP, 80/UDP, 81/TCP, 81/UDP probed once, and the analyzer
asked on the live objects. Mismatches are collected, not raised, so that one run reports all of
them (each with its policy set as YAML and the differing pairs) without hypothesis shrinking
through minutes of probes.

PODNET_POLICY_EXAMPLES sets the number of examples (200 by default); the run is derandomized,
so CI draws the same sets each time.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from policykit import (
    KEYS,
    NAMESPACES,
    SERVICES,
    Net,
    Probed,
    compare,
    expect,
    policy,
    policy_lab,
    summary,
    to_yaml,
    word,
)

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("PODNET_POLICY_EXAMPLES", "200"))

POD_VALUES = ["a", "b", "c", "d"]  # d: no pod has it
NS_VALUES = ["x", "y", "z", "w"]  # w: no namespace has it
PORT_NAMES = ["serve-80-tcp", "serve-80-udp", "serve-81-tcp", "serve-81-udp", "serve-82-tcp"]
PROTOCOLS = [None, "TCP", "UDP", "SCTP"]  # None: the default (TCP)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    root = Path(tempfile.mkdtemp(prefix="podnet-test-", dir="/tmp"))
    try:
        with policy_lab(root, dns=False) as lab:
            n = Net(lab)
            n.create()
            yield n
            print(f"\npolicy differential timings: {summary(n.timings)}; probes: {n.outcomes}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- what hypothesis draws ---------------------------------------------------------------------


def selectors(keys: list[str], values: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A label selector: empty, matchLabels, matchExpressions, or both."""
    key = st.sampled_from(keys)
    labels = st.dictionaries(key, st.sampled_from(values), min_size=1, max_size=2)
    with_values = st.builds(lambda k, op, vs: {"key": k, "operator": op, "values": vs},
                            key, st.sampled_from(["In", "NotIn"]),
                            st.lists(st.sampled_from(values), min_size=1, max_size=3,
                                     unique=True))
    without = st.builds(lambda k, op: {"key": k, "operator": op},
                        key, st.sampled_from(["Exists", "DoesNotExist"]))
    expressions = st.lists(st.one_of(with_values, without), min_size=1, max_size=2)
    return st.one_of(
        st.just({}),
        labels.map(lambda m: {"matchLabels": m}),
        expressions.map(lambda e: {"matchExpressions": e}),
        st.builds(lambda m, e: {"matchLabels": m, "matchExpressions": e}, labels, expressions))


POD_SELECTORS = selectors(["pod", "role"], POD_VALUES)
NS_SELECTORS = selectors(["ns", "kubernetes.io/metadata.name"], NS_VALUES)


@st.composite
def ip_blocks(draw: st.DrawFn, pod_ips: list[str]) -> dict[str, Any]:
    """A cidr around one pod's address (or a range with no pod), minus 0-2 excepts that are
    themselves around pods inside it."""
    if draw(st.integers(0, 9)) == 0:
        return {"cidr": draw(st.sampled_from(["192.0.2.0/24", "10.96.0.0/12"]))}
    ip = draw(st.sampled_from(pod_ips))
    prefix = draw(st.sampled_from([32, 30, 26, 24, 22, 16, 8, 0]))
    cidr = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    block: dict[str, Any] = {"cidr": str(cidr)}
    inside = [p for p in pod_ips if ipaddress.ip_address(p) in cidr]
    excepts: list[str] = []
    if prefix < 32:
        for _ in range(draw(st.integers(0, 2))):
            base = draw(st.sampled_from(inside))
            eprefix = draw(st.sampled_from([p for p in (32, 31, 28, 25, 24, 20)
                                            if p > prefix]))
            net = str(ipaddress.ip_network(f"{base}/{eprefix}", strict=False))
            if net not in excepts:
                excepts.append(net)
    if excepts:
        block["except"] = excepts
    return block


@st.composite
def peers(draw: st.DrawFn, pod_ips: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pod", "ns", "both", "ipBlock"]))
    if kind == "ipBlock":
        return {"ipBlock": draw(ip_blocks(pod_ips))}
    peer: dict[str, Any] = {}
    if kind in ("ns", "both"):
        peer["namespaceSelector"] = draw(NS_SELECTORS)
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(POD_SELECTORS)
    return peer


@st.composite
def port_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    protocol = draw(st.sampled_from(PROTOCOLS))
    if protocol is not None:
        entry["protocol"] = protocol
    kind = draw(st.sampled_from(["none", "number", "name", "range"]))
    if kind == "none" and protocol is None:
        kind = "number"  # an entry with neither says nothing; keep the draw useful
    if kind == "number":
        entry["port"] = draw(st.sampled_from([79, 80, 81, 82]))
    elif kind == "name":
        entry["port"] = draw(st.sampled_from(PORT_NAMES))
    elif kind == "range":
        start = draw(st.sampled_from([70, 79, 80, 81]))
        entry["port"] = start
        entry["endPort"] = start + draw(st.sampled_from([0, 1, 2, 15]))
    return entry


@st.composite
def rules(draw: st.DrawFn, pod_ips: list[str], side: str) -> dict[str, Any]:
    """One ingress (side "from") or egress (side "to") rule; {} allows everything."""
    rule: dict[str, Any] = {}
    peers_form = draw(st.sampled_from(["absent", "empty", "list", "list"]))
    if peers_form == "empty":
        rule[side] = []
    elif peers_form == "list":
        rule[side] = draw(st.lists(peers(pod_ips), min_size=1, max_size=3))
    ports_form = draw(st.sampled_from(["absent", "empty", "list", "list"]))
    if ports_form == "empty":
        rule["ports"] = []
    elif ports_form == "list":
        rule["ports"] = draw(st.lists(port_entries(), min_size=1, max_size=3))
    return rule


@st.composite
def policies(draw: st.DrawFn, pod_ips: list[str], index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(POD_SELECTORS)}
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    for key, side in (("ingress", "from"), ("egress", "to")):
        form = draw(st.sampled_from(["absent", "empty", "rules", "rules"]))
        if form == "empty":
            spec[key] = []
        elif form == "rules":
            spec[key] = draw(st.lists(rules(pod_ips, side), min_size=1, max_size=3))
    return policy(draw(st.sampled_from(NAMESPACES)), f"p{index}", **spec)


@st.composite
def policy_sets(draw: st.DrawFn, pod_ips: list[str]) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4))
    return [draw(policies(pod_ips, i)) for i in range(count)]


# -- the comparison can fail -------------------------------------------------------------------


def test_the_comparison_catches_a_wrong_matrix_on_any_side(net: Net) -> None:
    """One real round under a known policy; then each of probe, analyzer and expectation is
    made wrong in one cell, and the comparison must name exactly that cell."""
    net.apply(policy("x", "a-from-y", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]))
    try:
        probed = net.check(expect(ingress=lambda s, d, port, proto:
                                  d.key != "x/a" or s.ns == "y"))
        analyzed = net.analyzer()
        right = expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.ns == "y")
        assert compare(probed, analyzed, right) == ""
        # A denial the expectation forgot, and an allowed pair it denies.
        for cell in [("z/b", "x/a", 80, "TCP"), ("y/c", "x/a", 81, "UDP")]:
            assert probed.matrix[cell] == (cell[0].startswith("y/"))
            wrong = {**right, cell: not right[cell]}
            report = compare(probed, analyzed, wrong)
            assert report.startswith("1 cell(s) differ"), report
            s, d, port, proto = cell
            line = (f"{s} -> {d} {port}/{proto}: probe {word(probed.matrix[cell])} "
                    f"({probed.raw[cell]!r}), analyzer {word(analyzed[cell])}, expected "
                    f"{word(wrong[cell])}")
            assert report.splitlines()[-1] == line, report
            # The same cell wrong in the analyzer's matrix, then in the probe's.
            assert compare(probed, {**analyzed, cell: not analyzed[cell]}, right) \
                .splitlines()[-1].startswith(f"{s} -> {d} {port}/{proto}: probe ")
            flipped = Probed({**probed.matrix, cell: not probed.matrix[cell]}, probed.raw, 0.0)
            assert compare(flipped, analyzed, right).startswith("1 cell(s) differ")
        # A matrix with a cell missing is no pass either.
        partial = dict(right)
        del partial[(KEYS[0], KEYS[1], 80, "TCP")]
        assert compare(probed, analyzed, partial).startswith("cells missing")
    finally:
        net.delete_policy("x", "a-from-y")
        net.wait_enforced()


# -- the run -----------------------------------------------------------------------------------


@pytest.mark.timeout(max(600, EXAMPLES * 6))
def test_random_policy_sets_probe_as_the_analyzer_says(net: Net) -> None:
    pod_ips = sorted(p.ip for p in net.pods.values())
    mismatches: list[str] = []
    rejected: list[str] = []
    stats = {"examples": 0, "mixed": 0, "allowed": 0, "cells": 0}
    applied: list[tuple[str, str]] = []
    t0 = time.monotonic()

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        drawn = data.draw(policy_sets(pod_ips), label="policies")
        for ns, name in applied:
            net.delete_policy(ns, name)
        applied.clear()
        for pol in drawn:
            try:
                net.apply(pol)
            except Exception as e:  # the generator should make only valid policies
                rejected.append(f"{e}\n{to_yaml([pol])}")
                continue
            applied.append((pol["metadata"]["namespace"], pol["metadata"]["name"]))
        net.wait_enforced()
        probed = net.probe(SERVICES)
        analyzed = net.analyzer(SERVICES)
        report = compare(probed, analyzed, analyzed, SERVICES)
        if report:
            mismatches.append(f"--- example {stats['examples'] + 1}: policies\n"
                              f"{to_yaml(drawn)}{report}")
        allowed = sum(analyzed.values())
        stats["examples"] += 1
        stats["allowed"] += allowed
        stats["cells"] += len(analyzed)
        stats["mixed"] += 0 < allowed - 9 * len(SERVICES) < len(analyzed) - 9 * len(SERVICES)

    try:
        one()
    finally:
        for ns, name in applied:
            net.delete_policy(ns, name)
        if net.reset():
            net.wait_enforced()
    took = time.monotonic() - t0
    print(f"\n{stats['examples']} random policy sets in {took:.0f} s "
          f"({took / max(stats['examples'], 1):.2f} s each); {len(mismatches)} with mismatches; "
          f"{stats['mixed']} with some pairs allowed and some denied; "
          f"{100 * stats['allowed'] / max(stats['cells'], 1):.0f}% of cells allowed")
    assert not rejected, f"{len(rejected)} drawn policies were refused by the API:\n" + \
        "\n".join(rejected[:5])
    assert not mismatches, (f"{len(mismatches)} of {stats['examples']} policy sets: probes and "
                            "analyzer differ\n\n" + "\n\n".join(mismatches[:5]))
    assert stats["examples"] == EXAMPLES
    # The sets are not all trivial: most leave some pairs open and close others.
    assert stats["mixed"] >= EXAMPLES // 3, stats
