"""`podnet policy matrix|explain` offline (-f): manifests written to tmp_path, no cluster, no root.

The example (files are read in name order, so synthetic addresses follow this order):

    1-namespaces.yaml   Namespace x (team=x); y is only named by the objects below
    2-pods.yaml         a `kind: List`:  x/a  x/b (status.podIP 10.0.0.1)  y/a  y/b
                        every pod declares 80/TCP; y/b also 81/TCP (named metrics)
                        -> made-up addresses: x/a 10.0.0.2, y/a 10.0.0.3, y/b 10.0.0.4
    3-policies.yaml     x/from-block    x/a: ingress from 10.0.0.0/30 except 10.0.0.3/32
                        y/default-deny  every pod of y: no ingress
                        y/allow-from-x  y/b: ingress from namespaces team=x on 80
                        plus a Deployment, a Service and an extensions/v1beta1
                        NetworkPolicy (ignored, with a note)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from podnet.cli import policy
from podnet.cli.main import main
from podnet.policy import model

NAMESPACES = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: x}}
"""

PODS = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x, labels: {app: a}}
  spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: x, labels: {app: b}}
  spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
  status: {podIP: 10.0.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: y, labels: {app: a}}
  spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: y, labels: {app: b}}
  spec:
    containers:
    - name: c
      image: i
      ports: [{containerPort: 80}, {containerPort: 81, name: metrics}]
"""

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-block, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/30, except: [10.0.0.3/32]}
---
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
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: y}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: extensions/v1beta1
kind: NetworkPolicy
metadata: {name: old, namespace: y}
spec: {podSelector: {}}
"""

IGNORED_NOTE = ("note: ignored (policy analysis reads Pods, Namespaces and NetworkPolicies "
                "only): Deployment y/web, Service web, NetworkPolicy (extensions/v1beta1) "
                "y/old\n")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "1-namespaces.yaml").write_text(NAMESPACES)
    (d / "2-pods.yaml").write_text(PODS)
    (d / "3-policies.yaml").write_text(POLICIES)
    (d / "notes.txt").write_text("not a manifest: not read")
    return d


@pytest.fixture(autouse=True)
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline runs must not look for a cluster: its state root does not exist."""
    root = tmp_path / "no-state-root"
    monkeypatch.setenv("PODNET_STATE_ROOT", str(root))
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["policy", *args])
    out, err = capsys.readouterr()
    return rc, out, err


# -- matrix -----------------------------------------------------------------------------------


TABLE = """\
80/TCP
from\\to x/a x/b y/a y/b
x/a     .   .   X   .
x/b     .   .   X   .
y/a     X   .   .   X
y/b     X   .   X   .

81/TCP
from\\to x/a x/b y/a y/b
x/a     -   -   -   X
x/b     -   -   -   X
y/a     -   -   -   X
y/b     -   -   -   .
"""


def test_matrix_table(capsys: pytest.CaptureFixture[str], example: Path,
                      no_cluster: Path) -> None:
    assert run(capsys, "matrix", "-f", str(example)) == (0, TABLE, IGNORED_NOTE)
    assert not no_cluster.exists()


def test_matrix_csv(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    rc, out, err = run(capsys, "matrix", "-f", str(example), "-o", "csv",
                       "--namespaces", "y")
    assert (rc, err) == (0, IGNORED_NOTE)
    assert out == ("from,to,protocol,port,allowed\n"
                   "y/a,y/a,TCP,80,true\n"
                   "y/a,y/b,TCP,80,false\n"
                   "y/a,y/b,TCP,81,false\n"
                   "y/b,y/a,TCP,80,false\n"
                   "y/b,y/b,TCP,80,true\n"
                   "y/b,y/b,TCP,81,true\n")


def test_matrix_json_with_given_ports(capsys: pytest.CaptureFixture[str],
                                      example: Path) -> None:
    rc, out, _ = run(capsys, "matrix", "-f", str(example), "-o", "json",
                     "--namespaces", "x,y", "--ports", "81/tcp,53/UDP,81")
    assert rc == 0
    cells = json.loads(out)
    assert len(cells) == 4 * 4 * 2
    denied = {(c["from"], c["to"], c["protocol"], c["port"]) for c in cells
              if not c["allowed"]}
    assert denied == {
        ("x/a", "y/a", "TCP", 81), ("x/a", "y/b", "TCP", 81),
        ("x/b", "y/a", "TCP", 81), ("x/b", "y/b", "TCP", 81),
        ("y/b", "y/a", "TCP", 81), ("y/a", "y/b", "TCP", 81),
        ("y/a", "x/a", "TCP", 81), ("y/b", "x/a", "TCP", 81),
        ("x/a", "y/a", "UDP", 53), ("x/b", "y/a", "UDP", 53),
        ("x/a", "y/b", "UDP", 53), ("x/b", "y/b", "UDP", 53),
        ("y/b", "y/a", "UDP", 53), ("y/a", "y/b", "UDP", 53),
        ("y/a", "x/a", "UDP", 53), ("y/b", "x/a", "UDP", 53),
    }
    assert {(c["protocol"], c["port"]) for c in cells} == {("TCP", 81), ("UDP", 53)}


def test_matrix_reads_stdin(capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PODS))
    rc, out, err = run(capsys, "matrix", "-f", "-")
    assert (rc, err) == (0, "")
    assert out.splitlines()[:2] == ["80/TCP", "from\\to x/a x/b y/a y/b"]
    assert set("".join(out.splitlines()[2:6]).replace(" ", "")) - set("xyab/") == {"."}


def test_matrix_names_the_pods_left_out(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    docs = [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": name, "namespace": "q"}, "spec": spec, "status": status}
            for name, spec, status in [
                ("host", {"hostNetwork": True}, {}),
                ("done", {}, {"phase": "Succeeded"}),
                ("dead", {}, {"phase": "Failed"}),
                ("web", {}, {})]]
    f = tmp_path / "pods.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    rc, out, err = run(capsys, "matrix", "-f", str(f), "--ports", "80")
    assert (rc, out) == (0, "80/TCP\nfrom\\to q/web\nq/web   .\n")
    assert err == ("note: not in the matrix (finished (Failed)): q/dead\n"
                   "note: not in the matrix (finished (Succeeded)): q/done\n"
                   "note: not in the matrix (host network): q/host\n")


def test_matrix_no_pods(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "ns.yaml"
    f.write_text(NAMESPACES)
    assert run(capsys, "matrix", "-f", str(f)) == (0, "(no pods)\n", "")
    assert run(capsys, "matrix", "-f", str(f), "-o", "json") == (0, "[]\n", "")


def test_implied_namespace_has_its_name_label(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    """A namespace only named by objects is labelled kubernetes.io/metadata.name, as the
    API labels every namespace, so selectors on that label work offline; objects without
    a namespace go to -n (default: default)."""
    f = tmp_path / "all.yaml"
    f.write_text("""
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: team-a}
---
apiVersion: v1
kind: Pod
metadata: {name: server}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-team-a}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-a}}
""")
    rc, out, err = run(capsys, "explain", "-f", str(f), "--from", "team-a/client",
                       "--to", "server", "--port", "80")
    assert (rc, err) == (0, "")
    assert out == ("team-a/client -> default/server 80/TCP: allowed\n"
                   "  egress allowed: team-a/client is not isolated for egress\n"
                   "  ingress allowed by default/only-team-a rule 1\n")
    rc, out, err = run(capsys, "-n", "other", "explain", "-f", str(f), "--from",
                       "team-a/client", "--to", "server", "--port", "80")
    assert (rc, out) == (0, "team-a/client -> other/server 80/TCP: allowed\n"
                            "  egress allowed: team-a/client is not isolated for egress\n"
                            "  ingress allowed by other/only-team-a rule 1\n")


# -- explain ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst", "port", "out"), [
    pytest.param("x/a", "y/b", "80/TCP",
                 "x/a -> y/b 80/TCP: allowed\n"
                 "  egress allowed: x/a is not isolated for egress\n"
                 "  ingress allowed by y/allow-from-x rule 1\n", id="allowed-by-a-rule"),
    pytest.param("y/a", "y/b", "80",
                 "y/a -> y/b 80/TCP: denied\n"
                 "  egress allowed: y/a is not isolated for egress\n"
                 "  ingress denied: y/allow-from-x, y/default-deny select y/b and no rule "
                 "matches\n", id="denied-by-two-policies"),
    pytest.param("x/a", "y/b", "81/tcp",
                 "x/a -> y/b 81/TCP: denied\n"
                 "  egress allowed: x/a is not isolated for egress\n"
                 "  ingress denied: y/allow-from-x, y/default-deny select y/b and no rule "
                 "matches\n", id="rule-on-another-port"),
    pytest.param("x/b", "x/a", "80",
                 "x/b -> x/a 80/TCP: allowed\n"
                 "  egress allowed: x/b is not isolated for egress\n"
                 "  ingress allowed by x/from-block rule 1\n", id="ipblock-given-ip"),
    pytest.param("y/a", "x/a", "80",
                 "y/a -> x/a 80/TCP: denied\n"
                 "  egress allowed: y/a is not isolated for egress\n"
                 "  ingress denied: x/from-block selects x/a and no rule matches\n",
                 id="ipblock-except-made-up-ip"),
    pytest.param("y/b", "y/b", "9999/SCTP",
                 "y/b -> y/b 9999/SCTP: allowed\n"
                 "  egress allowed: a pod can always reach itself\n"
                 "  ingress allowed: a pod can always reach itself\n", id="self"),
    pytest.param("x/a", "y/b", "metrics",
                 'port "metrics" of y/b is 81/TCP\n'
                 "x/a -> y/b 81/TCP: denied\n"
                 "  egress allowed: x/a is not isolated for egress\n"
                 "  ingress denied: y/allow-from-x, y/default-deny select y/b and no rule "
                 "matches\n", id="named-port"),
])
def test_explain(capsys: pytest.CaptureFixture[str], example: Path, src: str, dst: str,
                 port: str, out: str) -> None:
    assert run(capsys, "explain", "-f", str(example), "--from", src, "--to", dst,
               "--port", port) == (0, out, IGNORED_NOTE)


# -- bad input --------------------------------------------------------------------------------


def policy_doc(direction: str, rule: dict[str, Any]) -> str:
    return yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "bad", "namespace": "x"},
        "spec": {"podSelector": {}, direction: [rule]}})


@pytest.mark.parametrize(("direction", "rule", "error"), [
    pytest.param("ingress", {"from": [{}]},
                 "spec.ingress[0].from[0]: Required value: must specify a peer",
                 id="empty-peer"),
    pytest.param("ingress", {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                       "podSelector": {}}]},
                 "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and "
                 "another peer", id="ipblock-and-selector"),
    pytest.param("egress", {"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]},
                 'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be '
                 "a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)", id="invalid-cidr"),
    pytest.param("ingress", {"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                   "except": ["10.1.0.0/24"]}}]},
                 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": '
                 "must be a strict subset of `cidr`", id="except-outside-cidr"),
    pytest.param("egress", {"ports": [{"endPort": 90}]},
                 "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified "
                 "when `port` is not specified", id="endport-without-port"),
    pytest.param("egress", {"ports": [{"port": "http", "endPort": 90}]},
                 "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified "
                 "when `port` is non-numeric", id="endport-with-named-port"),
    pytest.param("ingress", {"ports": [{"port": 80, "endPort": 79}]},
                 "spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than "
                 "or equal to `port`", id="endport-below-port"),
    pytest.param("ingress", {"ports": [{"port": 80, "protocol": "ICMP"}]},
                 'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported '
                 'values: "TCP", "UDP", "SCTP"', id="protocol"),
])
def test_invalid_policy_names_file_object_and_field(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, direction: str,
                                                    rule: dict[str, Any], error: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(policy_doc(direction, rule))
    assert run(capsys, "matrix", "-f", str(f)) == (
        1, "", f'error: {f}: NetworkPolicy "x/bad" is invalid: {error}\n')


def test_several_errors_of_one_policy_are_listed(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(policy_doc("ingress", {"from": [{}], "ports": [{"port": 0}]}))
    assert run(capsys, "matrix", "-f", str(f)) == (1, "", (
        f'error: {f}: NetworkPolicy "x/bad" is invalid: [spec.ingress[0].ports[0].port: '
        "Invalid value: 0: must be between 1 and 65535, inclusive, spec.ingress[0].from[0]: "
        "Required value: must specify a peer]\n"))


@pytest.mark.parametrize(("text", "error"), [
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\n",
                 'Pod "default/Bad_Name" is invalid: metadata.name: Invalid value: '
                 '"Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
                 "alphanumeric characters, '-' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                 id="pod-name"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIP: 1.2.3}\n",
                 'Pod "default/p" is invalid: status.podIP: Invalid value: "1.2.3": must be a '
                 "valid IPv4 address", id="pod-ip"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: up\n",
                 'Pod "default/p" is invalid: status: Invalid value: "up": must be of type '
                 "object", id="pod-status"),
    pytest.param("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {a: [1]}}\n",
                 'Namespace "x" is invalid: metadata.labels[a]: Invalid value: [1]: must be of '
                 "type string", id="namespace-labels"),
    pytest.param("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {}\n"
                 "spec: {podSelector: {}}\n",
                 'NetworkPolicy "default/<unnamed>" is invalid: metadata.name: Required value: '
                 "name or generateName is required", id="policy-without-name"),
])
def test_invalid_pod_namespace_or_unnamed_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  text: str, error: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    assert run(capsys, "matrix", "-f", str(f)) == (1, "", f"error: {f}: {error}\n")


@pytest.mark.parametrize(("args", "error"), [
    pytest.param(("explain", "--from", "x/a", "--to", "y/nope", "--port", "80"),
                 'error: pod "y/nope" not found', id="missing-pod"),
    pytest.param(("explain", "--from", "nope", "--to", "y/a", "--port", "80"),
                 'error: pod "default/nope" not found', id="missing-pod-bare-name"),
    pytest.param(("explain", "--from", "x/a/b", "--to", "y/a", "--port", "80"),
                 'error: invalid pod "x/a/b": want NAMESPACE/NAME', id="bad-pod-ref"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/a", "--port", "80/ICMP"),
                 'error: invalid port "80/ICMP": want PORT[/PROTOCOL] with PORT in 1-65535 '
                 "and PROTOCOL one of TCP, UDP, SCTP", id="bad-protocol"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/b", "--port", "http"),
                 'error: pod "y/b" declares no port named "http" for TCP (its named ports: '
                 '"metrics" 81/TCP)', id="unknown-named-port"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/b", "--port", "metrics/UDP"),
                 'error: pod "y/b" declares no port named "metrics" for UDP (its named ports: '
                 '"metrics" 81/TCP)', id="named-port-other-protocol"),
    pytest.param(("explain", "--from", "y/b", "--to", "x/a", "--port", "http"),
                 'error: pod "x/a" declares no port named "http" for TCP (it names none)',
                 id="pod-without-named-ports"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/a", "--port", "Http_1"),
                 'error: invalid port "Http_1": want PORT[/PROTOCOL] or NAME[/PROTOCOL] with '
                 "PORT in 1-65535, NAME a port name the destination pod declares, and "
                 "PROTOCOL one of TCP, UDP, SCTP", id="invalid-port-name"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/a", "--port", "http/ICMP"),
                 'error: invalid port "http/ICMP": want PORT[/PROTOCOL] or NAME[/PROTOCOL] '
                 "with PORT in 1-65535, NAME a port name the destination pod declares, and "
                 "PROTOCOL one of TCP, UDP, SCTP", id="named-port-bad-protocol"),
    pytest.param(("explain", "--from", "x/a", "--to", "y/a", "--port", "65536"),
                 'error: invalid port "65536": want PORT[/PROTOCOL] with PORT in 1-65535 '
                 "and PROTOCOL one of TCP, UDP, SCTP", id="port-too-big"),
    pytest.param(("matrix", "--ports", "80/TCP,,81"),
                 'error: invalid port "": want PORT[/PROTOCOL] with PORT in 1-65535 '
                 "and PROTOCOL one of TCP, UDP, SCTP", id="empty-port"),
    pytest.param(("matrix", "--ports", "80/"),
                 'error: invalid port "80/": want PORT[/PROTOCOL] with PORT in 1-65535 '
                 "and PROTOCOL one of TCP, UDP, SCTP", id="no-protocol-after-slash"),
    pytest.param(("matrix", "--namespaces", "y,q"), 'error: namespace "q" not found',
                 id="unknown-namespace"),
])
def test_bad_arguments_exit_1(capsys: pytest.CaptureFixture[str], example: Path,
                              args: tuple[str, ...], error: str) -> None:
    assert run(capsys, *args, "-f", str(example)) == (1, "", error + "\n")


@pytest.mark.parametrize(("files", "error"), [
    pytest.param({"a.yaml": "kind: [unclosed"}, "error: error parsing {d}/a.yaml: ",
                 id="broken-yaml"),
    pytest.param({"a.yaml": "metadata: {name: x}\n"},
                 'error: error validating "{d}/a.yaml": error validating data: '
                 "[apiVersion not set, kind not set]", id="no-kind"),
    pytest.param({"a.yaml": "- 1\n"},
                 'error: error validating "{d}/a.yaml": error validating data: not an object',
                 id="not-an-object"),
    pytest.param({"a.yaml": PODS, "b.yaml": PODS.split("- apiVersion")[0]
                  + "- apiVersion" + PODS.split("- apiVersion")[2]},
                 "error: {d}/b.yaml: Pod x/b is defined twice (first in {d}/a.yaml)",
                 id="duplicate"),
])
def test_unreadable_manifests(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              files: dict[str, str], error: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    rc, out, err = run(capsys, "matrix", "-f", str(tmp_path))
    assert (rc, out) == (1, "")
    assert err.startswith(error.format(d=tmp_path)), err


def test_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "matrix", "-f", str(tmp_path / "nope")) == (
        1, "", f'error: the path "{tmp_path / "nope"}" does not exist\n')


def test_explain_needs_from_to_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["policy", "explain", "--from", "x/a", "--port", "80"])
    assert e.value.code == 2
    assert "the following arguments are required: --to" in capsys.readouterr().err


# -- the parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "target"), [
    pytest.param("80", ("TCP", 80), id="default-tcp"),
    pytest.param("53/udp", ("UDP", 53), id="lower-case"),
    pytest.param(" 3868/SCTP", ("SCTP", 3868), id="sctp"),
    pytest.param("65535/TCP", ("TCP", 65535), id="highest"),
    pytest.param("1", ("TCP", 1), id="lowest"),
])
def test_parse_target(text: str, target: tuple[str, int]) -> None:
    assert policy.parse_target(text) == target


def test_protocols_are_the_models() -> None:
    assert policy.PROTOCOLS == model.PROTOCOLS


def test_parse_targets_keeps_order_without_repeats() -> None:
    assert policy.parse_targets("81/UDP,80,80/TCP,53/udp") == [
        ("UDP", 81), ("TCP", 80), ("UDP", 53)]


def test_synthetic_ips_skip_given_ones_and_pods_that_take_no_part() -> None:
    pods: list[dict[str, Any]] = [
        {"metadata": {"name": "a"}},
        {"metadata": {"name": "host"}, "spec": {"hostNetwork": True}},
        {"metadata": {"name": "given"}, "status": {"podIP": "10.0.0.2"}},
        {"metadata": {"name": "b"}},
        {"metadata": {"name": "done"}, "status": {"phase": "Succeeded"}},
        {"metadata": {"name": "c"}},
    ]
    policy.assign_synthetic_ips(pods)
    assert [p.get("status", {}).get("podIP") for p in pods] == [
        "10.0.0.1", None, "10.0.0.2", "10.0.0.3", None, "10.0.0.4"]
    assert pods[0]["status"]["podIPs"] == [{"ip": "10.0.0.1"}]


class FakeClient:
    """The three lists `podnet policy` reads from a live cluster."""

    def __init__(self, items: dict[str, list[dict[str, Any]]]) -> None:
        self.items = items
        self.asked: list[tuple[str, str | None]] = []

    def list(self, res: Any, ns: str | None = None) -> dict[str, Any]:
        self.asked.append((res.plural, ns))
        return {"items": self.items[res.plural]}


def test_live_inputs_lists_everything_across_namespaces() -> None:
    pod = {"metadata": {"name": "a", "namespace": "x"}, "status": {"podIP": "10.244.0.5"}}
    pending = {"metadata": {"name": "b", "namespace": "x"}, "status": {"phase": "Pending"}}
    netpol = {"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {}}}
    client = FakeClient({
        "namespaces": [{"metadata": {"name": "x", "labels": {"team": "x"}}},
                       {"metadata": {"name": "bare"}}],
        "pods": [pod, pending], "networkpolicies": [netpol]})
    inputs = policy.live_inputs(client)  # type: ignore[arg-type]
    assert sorted(client.asked) == [("namespaces", None), ("networkpolicies", None),
                                    ("pods", None)]
    assert inputs.namespaces == {
        "x": {"team": "x", "kubernetes.io/metadata.name": "x"},
        "bare": {"kubernetes.io/metadata.name": "bare"}}
    assert (inputs.pods, inputs.policies, inputs.notes) == ([pod, pending], [netpol], [])
    compiled = policy.compile_inputs(inputs)
    assert compiled.keys == {"x/a": "", "x/b": "no IP yet"}
    assert list(compiled.model.pods) == ["x/a"]
    assert policy.absent_notes(compiled.keys) == ["note: not in the matrix (no IP yet): x/b"]
    assert policy.absent_notes(compiled.keys, ["y"]) == []
