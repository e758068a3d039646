"""`podnet policy matrix|explain` against a live cluster, and NetworkPolicy bad input through the
real kubectl.

The cluster is the control plane alone (the `cluster` fixture): with no nodes the pods stay
Pending, so the test writes their addresses itself through the status subresource, as a node's
agent would. Address plan:

    x (team=x)   x/a 10.244.1.1   x/b 10.244.1.2          every pod declares 80/TCP
    y (team=y)   y/a 10.244.2.1   y/b 10.244.2.2   y/c (no IP yet)

    y/default-deny   podSelector {}            ingress: nothing
    y/allow-from-x   podSelector {app: b}      ingress from namespaces team=x on 80/TCP
"""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration

ADDRESSES = {"x/a": "10.244.1.1", "x/b": "10.244.1.2", "y/a": "10.244.2.1",
             "y/b": "10.244.2.2", "y/c": None}

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: y}
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-x, namespace: y}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: x}}
    ports:
    - port: 80
"""


def pod_manifest(key: str) -> dict:
    ns, name = key.split("/")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "podnet/echo",
                                     "ports": [{"containerPort": 80, "name": "http"}]}]}}


@pytest.fixture
def example(cluster):
    """The namespaces, pods (with their addresses) and policies of the address plan."""
    client = cluster.client
    for ns in ("x", "y"):
        client.create(cluster.res("namespaces"), None, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": ns}}})
    for key, ip in ADDRESSES.items():
        ns, name = key.split("/")
        client.create(cluster.res("pods"), ns, pod_manifest(key))
        if ip is not None:
            client.patch(cluster.res("pods"), ns, name,
                         {"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}, "merge",
                         subresource="status")
    for doc in yaml.safe_load_all(POLICIES):
        client.create(cluster.res("networkpolicies"), doc["metadata"]["namespace"], doc)
    return cluster


def cells(stdout: str) -> set[tuple[str, str, str, int, bool]]:
    return {(c["from"], c["to"], c["protocol"], c["port"], c["allowed"])
            for c in json.loads(stdout)}


def expected_cells(denied: set[tuple[str, str]]) -> set[tuple[str, str, str, int, bool]]:
    pods = [k for k, ip in ADDRESSES.items() if ip is not None]
    return {(a, b, "TCP", 80, (a, b) not in denied) for a in pods for b in pods}


DENIED = {("x/a", "y/a"), ("x/b", "y/a"), ("y/b", "y/a"), ("y/a", "y/b")}


def test_matrix_live_names_the_pods_without_ip(example):
    r = example.podnet("policy", "matrix", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert cells(r.stdout) == expected_cells(DENIED)
    assert r.stderr == "note: not in the matrix (no IP yet): y/c\n"


def test_matrix_live_follows_a_namespace_label_change(example):
    example.client.patch(example.res("namespaces"), None, "x",
                         {"metadata": {"labels": {"team": "other"}}})
    r = example.podnet("policy", "matrix", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert cells(r.stdout) == expected_cells(DENIED | {("x/a", "y/b"), ("x/b", "y/b")})


def test_matrix_live_csv_for_one_namespace_and_given_ports(example):
    r = example.podnet("policy", "matrix", "--namespaces", "y", "--ports", "80/TCP,81/TCP",
                       "-o", "csv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "from,to,protocol,port,allowed"
    assert sorted(lines[1:]) == sorted([
        "y/a,y/a,TCP,80,true", "y/a,y/b,TCP,80,false",
        "y/b,y/a,TCP,80,false", "y/b,y/b,TCP,80,true",
        "y/a,y/a,TCP,81,true", "y/a,y/b,TCP,81,false",
        "y/b,y/a,TCP,81,false", "y/b,y/b,TCP,81,true"])
    assert r.stderr == "note: not in the matrix (no IP yet): y/c\n"


@pytest.mark.parametrize(("src", "dst", "stdout"), [
    pytest.param("x/a", "y/b", "x/a -> y/b 80/TCP: allowed\n"
                               "  egress allowed: x/a is not isolated for egress\n"
                               "  ingress allowed by y/allow-from-x rule 1\n",
                 id="allowed-by-rule"),
    pytest.param("y/a", "y/b", "y/a -> y/b 80/TCP: denied\n"
                               "  egress allowed: y/a is not isolated for egress\n"
                               "  ingress denied: y/allow-from-x, y/default-deny select y/b "
                               "and no rule matches\n",
                 id="denied-by-two-policies"),
    pytest.param("y/b", "y/a", "y/b -> y/a 80/TCP: denied\n"
                               "  egress allowed: y/b is not isolated for egress\n"
                               "  ingress denied: y/default-deny selects y/a and no rule "
                               "matches\n",
                 id="denied-by-default-deny"),
])
def test_explain_live(example, src, dst, stdout):
    r = example.podnet("policy", "explain", "--from", src, "--to", dst, "--port", "80/TCP")
    assert (r.returncode, r.stdout, r.stderr) == (0, stdout, "")


@pytest.mark.parametrize(("args", "stderr"), [
    pytest.param(("--from", "x/a", "--to", "y/nope", "--port", "80"),
                 'error: pod "y/nope" not found\n', id="missing-pod"),
    pytest.param(("--from", "y/c", "--to", "y/b", "--port", "80"),
                 'error: pod "y/c" takes no part in policy (no IP yet)\n', id="pod-without-ip"),
    pytest.param(("--from", "x/a", "--to", "y/b", "--port", "80/ICMP"),
                 'error: invalid port "80/ICMP": want PORT[/PROTOCOL] with PORT in 1-65535 '
                 "and PROTOCOL one of TCP, UDP, SCTP\n", id="bad-port"),
])
def test_explain_live_bad_input(example, args, stderr):
    r = example.podnet("policy", "explain", *args)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", stderr)


# -- bad input through the real kubectl ---------------------------------------------------------


def policy_yaml(name: str, direction: str, rule: dict) -> str:
    return yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"podSelector": {}, direction: [rule]}})


@pytest.mark.parametrize(("direction", "rule", "error"), [
    pytest.param("ingress", {"from": [{}]},
                 "spec.ingress[0].from[0]: Required value: must specify a peer",
                 id="empty-peer"),
    pytest.param("egress", {"to": [{}]},
                 "spec.egress[0].to[0]: Required value: must specify a peer",
                 id="empty-egress-peer"),
    pytest.param("ingress", {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                       "podSelector": {}}]},
                 "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and "
                 "another peer", id="ipblock-and-podselector"),
    pytest.param("egress", {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                    "namespaceSelector": {}}]},
                 "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and "
                 "another peer", id="ipblock-and-namespaceselector"),
    pytest.param("ingress", {"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]},
                 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be '
                 "a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)", id="invalid-cidr"),
    pytest.param("ingress", {"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                   "except": ["10.1.0.0/24"]}}]},
                 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": '
                 "must be a strict subset of `cidr`", id="except-outside-cidr"),
    pytest.param("egress", {"ports": [{"protocol": "TCP", "endPort": 90}]},
                 "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified "
                 "when `port` is not specified", id="endport-without-port"),
    pytest.param("egress", {"ports": [{"port": "http", "endPort": 90}]},
                 "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified "
                 "when `port` is non-numeric", id="endport-with-named-port"),
    pytest.param("ingress", {"ports": [{"port": 80, "endPort": 79}]},
                 "spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than "
                 "or equal to `port`", id="endport-below-port"),
])
def test_kubectl_rejects_invalid_policy_naming_the_field(cluster, direction, rule, error):
    r = cluster.kubectl("create", "-f", "-", input=policy_yaml("bad", direction, rule))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f'The NetworkPolicy "bad" is invalid: {error}\n'
    r = cluster.kubectl("get", "networkpolicy", "bad", "-n", "default")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ('Error from server (NotFound): networkpolicies.networking.k8s.io '
                        '"bad" not found\n')


def test_kubectl_stores_the_valid_counterpart(cluster):
    """The same shapes, made valid, are accepted (so the rejections above are about the
    field, not the request)."""
    rule = {"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
            "ports": [{"port": 80, "endPort": 90}]}
    r = cluster.kubectl("create", "-f", "-", input=policy_yaml("good", "ingress", rule))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    r = cluster.kubectl("get", "networkpolicy", "good", "-n", "default", "-o", "json")
    stored = json.loads(r.stdout)["spec"]
    assert stored["ingress"][0]["ports"] == [{"port": 80, "endPort": 90, "protocol": "TCP"}]
    assert stored["policyTypes"] == ["Ingress"]
