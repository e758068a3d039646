"""The analyzer: the reachability matrix, its table / JSON / CSV forms, and `explain`.

Address plan: x/a 10.244.1.10 (http 80/TCP, dns 53/UDP), x/b 10.244.1.11 (http 80/TCP),
y/c 10.244.2.10 (no declared port); 192.0.2.1 is off-cluster. Policies: x/only-a lets only
x/a into x/b; y/egress lets y's pods out only to namespace x on 53/UDP and 80/TCP.
For the size test, n/p00..n/p16 are 10.244.1.0..10.244.1.16, only .0-.7 let in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from podnet.policy.analyze import (
    Matrix,
    explain,
    format_table,
    matrix,
    to_csv,
    to_json,
)
from podnet.policy.model import NamedPort, Pod, PolicyModel, compile_model, decide, ip_to_int

PODS = [
    Pod("x", "a", ip_to_int("10.244.1.10"), "node-1", {"pod": "a"},
        (NamedPort("http", 80, "TCP"), NamedPort("dns", 53, "UDP"))),
    Pod("x", "b", ip_to_int("10.244.1.11"), "node-1", {"pod": "b"},
        (NamedPort("http", 80, "TCP"),)),
    Pod("y", "c", ip_to_int("10.244.2.10"), "node-2", {"pod": "c"}),
]
ONLY_A = {"metadata": {"namespace": "x", "name": "only-a"}, "spec": {
    "podSelector": {"matchLabels": {"pod": "b"}},
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}]}}
EGRESS = {"metadata": {"namespace": "y", "name": "egress"}, "spec": {
    "podSelector": {}, "policyTypes": ["Egress"],
    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "x"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}]}]}}
MODEL = compile_model(PODS, {"x": {}, "y": {}}, [ONLY_A, EGRESS])
OUTSIDE = ip_to_int("192.0.2.1")


def test_matrix_default_targets_are_declared_ports() -> None:
    m = matrix(MODEL)
    assert m.pods == ("x/a", "x/b", "y/c")
    assert m.targets == (("UDP", 53), ("TCP", 80))
    assert m.cells == {
        ("x/a", "x/a", "UDP", 53): True, ("x/b", "x/a", "UDP", 53): True,
        ("y/c", "x/a", "UDP", 53): True,
        ("x/a", "x/a", "TCP", 80): True, ("x/b", "x/a", "TCP", 80): True,
        ("y/c", "x/a", "TCP", 80): True,
        ("x/a", "x/b", "TCP", 80): True, ("x/b", "x/b", "TCP", 80): True,
        ("y/c", "x/b", "TCP", 80): False,
    }


def test_matrix_given_pods_and_targets() -> None:
    m = matrix(MODEL, pods=["y/c", "x/b"], targets=[("TCP", 81), ("TCP", 81), ("UDP", 53)])
    assert m == Matrix(("y/c", "x/b"), (("TCP", 81), ("UDP", 53)), {
        ("y/c", "y/c", "TCP", 81): True, ("y/c", "x/b", "TCP", 81): False,
        ("x/b", "y/c", "TCP", 81): True, ("x/b", "x/b", "TCP", 81): True,
        ("y/c", "y/c", "UDP", 53): True, ("y/c", "x/b", "UDP", 53): False,
        ("x/b", "y/c", "UDP", 53): True, ("x/b", "x/b", "UDP", 53): True,
    })


DEFAULT_TABLE = """\
53/UDP
from\\to x/a x/b y/c
x/a     .   -   -
x/b     .   -   -
y/c     .   -   -

80/TCP
from\\to x/a x/b y/c
x/a     .   .   -
x/b     .   .   -
y/c     .   X   -
"""
GIVEN_TABLE = """\
80/TCP
from\\to x/a x/b y/c
x/a     .   .   .
x/b     .   .   .
y/c     .   X   .

81/TCP
from\\to x/a x/b y/c
x/a     .   .   .
x/b     .   .   .
y/c     X   X   .
"""
NUMBERED_TABLE = """\
53/UDP
       012
0 x/a  .--
1 x/b  .--
2 y/c  .--

80/TCP
       012
0 x/a  ..-
1 x/b  ..-
2 y/c  .X-
"""


@pytest.mark.parametrize(("m", "numbered", "expected"), [
    pytest.param(matrix(MODEL), None, DEFAULT_TABLE, id="declared-ports-dash-not-served"),
    pytest.param(matrix(MODEL, targets=[("TCP", 80), ("TCP", 81)]), None, GIVEN_TABLE,
                 id="given-targets"),
    pytest.param(matrix(MODEL), True, NUMBERED_TABLE, id="numbered-on-request"),
    pytest.param(matrix(MODEL, pods=[]), None, "(no pods)\n", id="no-pods"),
    pytest.param(matrix(MODEL, pods=["y/c"]), None, "(no targets)\n", id="no-targets"),
])
def test_format_table(m: Matrix, numbered: bool | None, expected: str) -> None:
    assert format_table(m, numbered=numbered) == expected


BIG = compile_model(
    [Pod("n", f"p{i:02}", ip_to_int("10.244.1.0") + i, "node-1", {}) for i in range(17)], {},
    [{"metadata": {"namespace": "n", "name": "from-low"},
      "spec": {"podSelector": {},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.0/29"}}]}]}}])
BIG_TABLE = """\
80/TCP
                     1111111
          0123456789 0123456
 0 n/p00  .......... .......
 1 n/p01  .......... .......
 2 n/p02  .......... .......
 3 n/p03  .......... .......
 4 n/p04  .......... .......
 5 n/p05  .......... .......
 6 n/p06  .......... .......
 7 n/p07  .......... .......
 8 n/p08  XXXXXXXX.X XXXXXXX
 9 n/p09  XXXXXXXXX. XXXXXXX
10 n/p10  XXXXXXXXXX .XXXXXX
11 n/p11  XXXXXXXXXX X.XXXXX
12 n/p12  XXXXXXXXXX XX.XXXX
13 n/p13  XXXXXXXXXX XXX.XXX
14 n/p14  XXXXXXXXXX XXXX.XX
15 n/p15  XXXXXXXXXX XXXXX.X
16 n/p16  XXXXXXXXXX XXXXXX.
"""


def test_format_table_numbers_columns_above_sixteen_pods() -> None:
    assert format_table(matrix(BIG, targets=[("TCP", 80)])) == BIG_TABLE


def test_format_table_keys_up_to_sixteen_pods() -> None:
    table = format_table(matrix(BIG, pods=sorted(BIG.pods)[:16], targets=[("TCP", 80)]))
    assert table.splitlines()[1] == "from\\to " + " ".join(f"n/p{i:02}" for i in range(16))
    assert table.splitlines()[10] == "n/p08   " + " ".join(
        "." if i == 8 else "X" for i in range(16)).replace(" ", "     ")


SMALL = matrix(MODEL, pods=["x/b", "y/c"], targets=[("TCP", 80)])


def test_to_json() -> None:
    assert to_json(SMALL) == (
        '[\n'
        '  {"from": "x/b", "to": "x/b", "protocol": "TCP", "port": 80, "allowed": true},\n'
        '  {"from": "x/b", "to": "y/c", "protocol": "TCP", "port": 80, "allowed": true},\n'
        '  {"from": "y/c", "to": "x/b", "protocol": "TCP", "port": 80, "allowed": false},\n'
        '  {"from": "y/c", "to": "y/c", "protocol": "TCP", "port": 80, "allowed": true}\n'
        ']\n')
    assert json.loads(to_json(matrix(MODEL)))[2] == {
        "from": "x/a", "to": "x/b", "protocol": "TCP", "port": 80, "allowed": True}
    assert to_json(matrix(MODEL, pods=[])) == "[]\n"


def test_to_csv() -> None:
    assert to_csv(SMALL) == ("from,to,protocol,port,allowed\n"
                             "x/b,x/b,TCP,80,true\n"
                             "x/b,y/c,TCP,80,true\n"
                             "y/c,x/b,TCP,80,false\n"
                             "y/c,y/c,TCP,80,true\n")
    assert to_csv(matrix(MODEL, pods=[])) == "from,to,protocol,port,allowed\n"


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "expected"), [
    pytest.param("y/c", "x/b", "TCP", 80,
                 "y/c -> x/b 80/TCP: denied\n"
                 "  egress allowed by y/egress rule 1\n"
                 "  ingress denied: x/only-a selects x/b and no rule matches\n",
                 id="ingress-denied"),
    pytest.param("y/c", "x/a", "TCP", 81,
                 "y/c -> x/a 81/TCP: denied\n"
                 "  egress denied: y/egress selects y/c and no rule matches\n"
                 "  ingress allowed: x/a is not isolated for ingress\n",
                 id="egress-denied"),
    pytest.param("x/a", "x/b", "UDP", 9,
                 "x/a -> x/b 9/UDP: allowed\n"
                 "  egress allowed: x/a is not isolated for egress\n"
                 "  ingress allowed by x/only-a rule 1\n",
                 id="allowed"),
    pytest.param(OUTSIDE, "x/b", "TCP", 80,
                 "192.0.2.1 -> x/b 80/TCP: denied\n"
                 "  egress allowed: not a pod: 192.0.2.1\n"
                 "  ingress denied: x/only-a selects x/b and no rule matches\n",
                 id="from-outside"),
    pytest.param("y/c", "y/c", "TCP", 80,
                 "y/c -> y/c 80/TCP: allowed\n"
                 "  egress allowed: a pod can always reach itself\n"
                 "  ingress allowed: a pod can always reach itself\n",
                 id="self"),
])
def test_explain(src: str | int, dst: str | int, protocol: str, port: int,
                 expected: str) -> None:
    assert explain(MODEL, src, dst, protocol, port) == expected


# --- the matrix agrees with decide, cell by cell -------------------------------------------------

def _e2e_pods() -> list[Pod]:
    ports = tuple(NamedPort(f"serve-{p}-{t.lower()}", p, t)
                  for p in (80, 81) for t in ("TCP", "UDP"))
    return [Pod(ns, n, ip_to_int(f"10.244.{i + 1}.{10 + j}"), "node-1", {"pod": n}, ports)
            for i, ns in enumerate("xyz") for j, n in enumerate("abc")]


def _pol(key: str, **spec: Any) -> dict[str, Any]:
    ns, name = key.split("/")
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"podSelector": {}, **spec}}


POLICY_SETS = {
    "deny-all-y": [_pol("y/deny", policyTypes=["Ingress", "Egress"])],
    "named-and-ranges": [
        _pol("x/in", podSelector={"matchLabels": {"pod": "a"}},
             ingress=[{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]},
                      {"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}],
                       "ports": [{"port": 80, "endPort": 81}]}]),
        _pol("z/out", policyTypes=["Egress"], egress=[
            {"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}],
             "ports": [{"port": "serve-80-tcp"}, {"protocol": "UDP"}]}])],
}


@pytest.mark.parametrize("name", sorted(POLICY_SETS))
def test_matrix_agrees_with_decide(name: str) -> None:
    model: PolicyModel = compile_model(_e2e_pods(), {n: {"ns": n} for n in "xyz"},
                                       POLICY_SETS[name])
    m = matrix(model, targets=[("TCP", 80), ("TCP", 81), ("UDP", 80), ("UDP", 81)])
    assert len(m.cells) == 9 * 9 * 4
    wrong = [cell for cell, allowed in m.cells.items()
             if decide(model, *cell).allowed != allowed]
    assert wrong == []
    assert sorted(set(m.cells.values())) == [False, True]
