"""The ingress that `podnet up` runs, from the outside: curl on the external host against
Ingresses and echo backends, through HAProxy in the ingress pod.

Address plan (ingresskit's): LAN 172.18.0.0/24, the external host at .2, node-1 .11, node-2
.12; the ingress Service's LoadBalancer address from the pool .200-.249 (announced by node-1,
where the ingress pod runs: externalTrafficPolicy Local); pods in 10.244.0.0/16. Each test has
a namespace of its own (t-xxxxxx) and names its hosts under .test; echo pods <svc>-<i> answer
with JSON naming the pod, so `Answer.service` is the Service that answered.

One lab serves the whole module; every test removes what it made (its namespace, its
IngressClasses, its changes to the `podnet` class), also when it fails.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TestCluster
from ingresskit import (
    EXTERNAL_IP,
    ING,
    ING_CLASS,
    NOT_FOUND_BODY,
    POD,
    SECRET,
    SVC,
    Request,
    Scope,
    controller_log,
    curl,
    echo_backends,
    get,
    haproxy_dir,
    in_pod,
    ingress,
    ingress_class,
    ingress_lab,
    ingress_pod,
    lb_ip,
    metrics,
    path,
    raw_http,
    reload_counted,
    routed,
    rule,
    scope,
    self_signed,
    served_subject,
    status_ips,
    tls_secret,
    unit_routes_module,
)
from labkit import echo_pod, ready_endpoints, service, wait_for

from podnet.client.http import ApiError
from podnet.cluster import addons, lifecycle
from podnet.ingress import controller
from podnet.lab import names as lab_names

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("haproxy") is None,
                                 reason="haproxy not installed (scripts/install.sh installs it)")]

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@pytest.fixture(scope="module")
def lab() -> Iterator[TestCluster]:
    root = Path(tempfile.mkdtemp(prefix="podnet-test-", dir="/tmp"))
    try:
        with ingress_lab(root) as made:
            yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ip(lab: TestCluster) -> str:
    return lb_ip(lab)


@pytest.fixture
def s(lab: TestCluster) -> Iterator[Scope]:
    with scope(lab) as made:
        yield made


# -- what `podnet up` makes -------------------------------------------------------------------


def test_up_deploys_the_ingress_behind_a_load_balancer(lab: TestCluster, ip: str) -> None:
    cls = lab.client.get(ING_CLASS, None, "podnet")
    assert cls["spec"] == {"controller": "podnet.dev/ingress-controller"}
    assert DEFAULT_CLASS_ANNOTATION not in (cls["metadata"].get("annotations") or {})

    svc = lab.client.get(SVC, "ingress-podnet", "podnet-ingress")
    assert (svc["spec"]["type"], svc["spec"]["externalTrafficPolicy"]) == (
        "LoadBalancer", "Local")
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 80, "http"), ("https", 443, "https")]
    assert ip == "172.18.0.200"  # the LoadBalancer pool's first address, on a fresh lab

    pod = ingress_pod(lab)
    assert pod["spec"]["nodeName"] == "node-1"
    assert addons.pod_ready(pod)
    command = pod["spec"]["containers"][0]["command"]
    assert command[1:3] == ["-m", "podnet.ingress.main"]
    assert command[command.index("--state-dir") + 1] == str(haproxy_dir(lab))
    assert command[command.index("--publish-service") + 1] == "ingress-podnet/podnet-ingress"
    assert ready_endpoints(lab, "podnet-ingress", "ingress-podnet") == {pod["status"]["podIP"]}

    # HAProxy runs inside the pod as the controller's child: master, then its worker.
    procs = pod_processes(lab.name, pod["metadata"]["uid"])
    controllers = [p for p, (_, args) in procs.items() if "podnet.ingress.main" in args]
    masters = [p for p, (ppid, args) in procs.items()
               if Path(args[0]).name == "haproxy" and ppid in controllers]
    workers = [p for p, (ppid, args) in procs.items()
               if Path(args[0]).name == "haproxy" and ppid in masters]
    assert (len(controllers), len(masters), len(workers)) == (1, 1, 1), procs
    assert procs[masters[0]][1][-5:] == ["-W", "-f", str(haproxy_dir(lab) / "haproxy.cfg"),
                                         "-p", str(haproxy_dir(lab) / "haproxy.pid")]

    # With no Ingress, podnet's own 404, over HTTP and HTTPS (the default certificate).
    for tls in (False, True):
        answer = get(lab, ip, "nothing.test", "/x", tls=tls)
        assert (answer.status, answer.body) == (404, NOT_FOUND_BODY)
    assert served_subject(lab, ip, "nothing.test") == controller.DEFAULT_CERT_NAME

    r = in_pod(lab, pod, "curl", "-s", f"http://127.0.0.1:{addons.INGRESS_HEALTH_PORT}/healthz")
    assert r.stdout == "ok\n"
    assert metrics(lab)["errors_total"] == 0

    status = lab.podnet("status")
    assert status.returncode == 0, status.stdout
    assert (f"ingress:    {ip} (ingress-podnet/podnet-ingress, class podnet), podnet-ingress "
            "on node-1 Ready") in status.stdout.splitlines()
    up = lab.podnet("up")  # again: nothing to make, and it says where the ingress is
    assert (up.returncode, up.stderr) == (0, "")
    assert f"ingress: {ip} (class podnet)" in up.stdout.splitlines()


def pod_processes(cluster: str, uid: str) -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of the processes in a pod's network namespace."""
    out = subprocess.run(["ip", "netns", "pids", lab_names.pod_netns(cluster, uid)],
                         capture_output=True, text=True, check=True)
    procs = {}
    for pid in map(int, out.stdout.split()):
        args = lifecycle.cmdline(pid)
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if args:
                procs[pid] = (int(stat[1]), args)
    return procs


# -- routing ----------------------------------------------------------------------------------


def test_host_rules_and_wildcards(lab: TestCluster, ip: str, s: Scope) -> None:
    echo_backends(s, "exact", "wild", "api", "any")
    s.create(ING, ingress("hosts",
                          rule("foo.bar.com", path("/", "exact")),
                          rule("*.foo.com", path("/", "wild"), path("/api", "api")),
                          rule(None, path("/", "any"))))
    cases = [
        (Request("foo.bar.com", "/x"), "exact"),
        (Request("foo.bar.com", "/", header_host="FOO.Bar.com:8080"), "exact"),  # port, case
        (Request("bar.foo.com", "/x"), "wild"),
        (Request("bar.foo.com", "/api/v1"), "api"),
        (Request("bar.foo.com", "/", header_host="BAR.foo.com:80"), "wild"),
        (Request("baz.bar.foo.com"), "any"),  # a wildcard covers exactly one label
        (Request("foo.com"), "any"),  # ... and not the domain itself
        (Request("other.test", "/y"), "any"),  # a rule without a host matches every host
        (Request("foo.bar.com.test"), "any"),
    ]
    routed(lab, ip, [r for r, _ in cases], [w for _, w in cases])


def test_every_row_of_the_docs_path_table(lab: TestCluster, ip: str, s: Scope) -> None:
    """The Kubernetes docs' path examples (the unit tests' DOCS_TABLE, with the conformance
    rows), each row on a host of its own in one Ingress, answered by real pods."""
    table = unit_routes_module().DOCS_TABLE
    echo_backends(s, "r0", "r1", "r2", "default-backend")
    rules = [rule(f"row{i}.paths.test",
                  *[path(p, f"r{j}", t) for j, (p, t) in enumerate(row_rules)])
             for i, (_, row_rules, _, _) in enumerate(table)]
    s.create(ING, ingress("paths", *rules, default="default-backend"))
    requests = [Request(f"row{i}.paths.test", request_path)
                for i, (_, _, request_path, _) in enumerate(table)]
    expected = ["default-backend" if winner is None else f"r{winner}"
                for _, _, _, winner in table]
    answers = routed(lab, ip, requests, expected)
    # The backend got the path as it was sent.
    assert [a.json["path"] for a in answers] == [r.path for r in requests]


def test_exact_beats_prefix_across_ingresses_merged_on_one_host(lab: TestCluster, ip: str,
                                                                 s: Scope) -> None:
    echo_backends(s, "prefix", "exact", "deeper", "later")
    # Created in this order; names sort the same way, for Ingresses made in the same second.
    s.create(ING, ingress("a-older", rule("m.test", path("/foo", "prefix"))))
    s.create(ING, ingress("b-newer", rule("m.test", path("/foo", "exact", "Exact"),
                                          path("/foo/bar", "deeper"))))
    s.create(ING, ingress("c-newest", rule("m.test", path("/foo", "later"))))  # loses to a-older
    cases = [("/foo", "exact"), ("/foo/", "prefix"), ("/foo/x", "prefix"),
             ("/foo/bar", "deeper"), ("/foo/bar/baz", "deeper"), ("/foobar", "404"),
             ("/", "404")]
    routed(lab, ip, [Request("m.test", p) for p, _ in cases], [w for _, w in cases])
    assert "c-newest: spec.rules[0].http.paths[0]: Prefix '/foo' on host 'm.test' is already " \
           f"routed by {s.ns}/a-older" in controller_log(lab)

    # The winner goes: the next oldest takes its place.
    s.client.delete(ING, s.ns, "a-older")
    routed(lab, ip, [Request("m.test", "/foo/x"), Request("m.test", "/foo")],
           ["later", "exact"])


# -- defaults and backends --------------------------------------------------------------------


def test_default_backend_404_and_503(lab: TestCluster, ip: str, s: Scope) -> None:
    echo_backends(s, "fallback", "web")
    s.create(SVC, service("unready", {"app": "unready"}))
    never = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    s.create(POD, echo_pod("unready-1", "node-2", {"app": "unready"}, grace=1,
                           readinessProbe=never))
    s.create(SVC, service("nobody", {"app": "nobody"}))  # selects no pod
    s.create(ING, ingress("defaults",
                          rule("d.test", path("/web", "web"), path("/unready", "unready"),
                               path("/nobody", "nobody"), path("/missing", "missing")),
                          default="fallback"))
    wait_for("unready-1 running", lambda: s.client.get(POD, s.ns, "unready-1").get(
        "status", {}).get("podIP"), timeout=60)
    cases = [(Request("d.test", "/web"), "web"), (Request("d.test", "/other"), "fallback"),
             (Request("x.test", "/"), "fallback"),
             (Request("d.test", "/unready"), "503"),  # endpoints, none ready
             (Request("d.test", "/nobody"), "503"),  # no endpoints at all
             (Request("d.test", "/missing"), "503")]  # no such Service
    routed(lab, ip, [r for r, _ in cases], [w for _, w in cases])

    # Without a defaultBackend: podnet's own 404.
    s.client.patch(ING, s.ns, "defaults", {"spec": {"defaultBackend": None}})
    routed(lab, ip, [Request("d.test", "/other"), Request("d.test", "/web")], ["404", "web"])
    assert get(lab, ip, "d.test", "/other").body == NOT_FOUND_BODY


def test_requests_spread_over_ten_pods_and_endpoints_change_without_reload(
        lab: TestCluster, ip: str, s: Scope) -> None:
    echo_backends(s, "spread", pods=10)  # five on each node
    s.create(ING, ingress("spread", rule("spread.test", path("/", "spread"))))
    routed(lab, ip, [Request("spread.test")], ["spread"])
    wait_for("all ten pods behind the ingress", lambda: len(
        {a.pod for a in curl(lab, ip, [Request("spread.test")] * 20)}) == 10)
    wait_for("the reload for spread counted", lambda: reload_counted(lab, s.ns, "spread"))
    before = metrics(lab)

    answers = curl(lab, ip, [Request("spread.test")] * 200)
    assert collections.Counter(a.pod for a in answers) == {
        f"spread-{i}": 20 for i in range(1, 11)}

    # One pod goes: the Runtime API takes it out, with no reload.
    s.client.delete(POD, s.ns, "spread-10")
    wait_for("spread-10 out of the ingress", lambda: "spread-10" not in {
        a.pod for a in curl(lab, ip, [Request("spread.test")] * 20)})
    answers = curl(lab, ip, [Request("spread.test")] * 180)
    assert collections.Counter(a.pod for a in answers) == {
        f"spread-{i}": 20 for i in range(1, 10)}
    after = metrics(lab)
    assert after["reloads_total"] == before["reloads_total"]
    assert after["runtime_updates_total"] > before["runtime_updates_total"]
    assert after["errors_total"] == 0


# -- classes and status -----------------------------------------------------------------------


def test_class_rules_and_status(lab: TestCluster, ip: str, s: Scope) -> None:
    echo_backends(s, "web")
    other = f"other-{s.ns}"
    s.create(ING_CLASS, ingress_class(other, "example.com/other-controller"))
    s.create(ING, ingress("by-class", rule("class.test", path("/", "web"))))
    s.create(ING, ingress("by-annotation", rule("annotation.test", path("/", "web")), cls=None,
                          annotations={CLASS_ANNOTATION: "podnet"}))
    s.create(ING, ingress("no-class", rule("noclass.test", path("/", "web")), cls=None))
    s.create(ING, ingress("other-class", rule("other.test", path("/", "web")), cls=other))
    s.create(ING, ingress("other-annotation", rule("otherann.test", path("/", "web")),
                          cls=None, annotations={CLASS_ANNOTATION: "nginx"}))
    hosts = ["class.test", "annotation.test", "noclass.test", "other.test", "otherann.test"]
    requests = [Request(h) for h in hosts]

    routed(lab, ip, requests, ["web", "web", "404", "404", "404"])
    wait_for("status on ours", lambda: [status_ips(s, n) for n in ("by-class", "by-annotation")]
             == [[ip], [ip]])
    assert [status_ips(s, n) for n in ("no-class", "other-class", "other-annotation")] == [
        [], [], []]
    assert lab.kubectl("get", "ingress", "-n", s.ns, "by-class", "-o",
                       "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout == ip

    # `podnet` marked the default class: the Ingress without a class becomes ours; the other
    # class and the other annotation stay someone else's.
    try:
        s.client.patch(ING_CLASS, None, "podnet", {"metadata": {"annotations": {
            DEFAULT_CLASS_ANNOTATION: "true"}}})
        routed(lab, ip, requests, ["web", "web", "web", "404", "404"])
        wait_for("status on no-class", lambda: status_ips(s, "no-class") == [ip])
        assert [status_ips(s, n) for n in ("other-class", "other-annotation")] == [[], []]
    finally:
        s.client.patch(ING_CLASS, None, "podnet", {"metadata": {"annotations": {
            DEFAULT_CLASS_ANNOTATION: None}}})
    # ... and no longer: it stops being ours, and loses its status.
    routed(lab, ip, requests, ["web", "web", "404", "404", "404"])
    wait_for("no-class's status cleared", lambda: status_ips(s, "no-class") == [])

    # An Ingress moved to another class loses its routes and its status.
    s.client.patch(ING, s.ns, "by-class", {"spec": {"ingressClassName": other}})
    routed(lab, ip, requests[:1], ["404"])
    wait_for("by-class's status cleared", lambda: status_ips(s, "by-class") == [])
    assert status_ips(s, "by-annotation") == [ip]


# -- TLS --------------------------------------------------------------------------------------


def test_https_by_sni_for_two_hosts_the_host_header_routes(lab: TestCluster, ip: str,
                                                             s: Scope, tmp_path: Path) -> None:
    echo_backends(s, "alpha", "beta")
    pems = {}
    for host in ("a.tls.test", "b.tls.test"):
        crt, key = self_signed(host)
        pems[host] = tmp_path / f"{host}.pem"
        pems[host].write_bytes(crt)
        s.create(SECRET, tls_secret(host.split(".")[0] + "-tls", crt, key))
    s.create(ING, ingress("tls", rule("a.tls.test", path("/", "alpha")),
                          rule("b.tls.test", path("/", "beta")),
                          tls=[{"hosts": ["a.tls.test"], "secretName": "a-tls"},
                               {"hosts": ["b.tls.test"], "secretName": "b-tls"}]))
    a, b = pems["a.tls.test"], pems["b.tls.test"]
    answers = routed(lab, ip, [
        Request("a.tls.test", "/x", tls=True, cacert=a),
        Request("b.tls.test", "/y", tls=True, cacert=b),
        # SNI says a, the Host header says b: the certificate is a's, the route b's.
        Request("a.tls.test", "/z", tls=True, cacert=a, header_host="b.tls.test"),
        Request("a.tls.test", "/plain"),  # HTTP too
    ], ["alpha", "beta", "beta", "alpha"])
    assert all(x.verified for x in answers)
    headers = answers[0].json["headers"]
    assert (headers["x-forwarded-proto"], headers["x-forwarded-for"],
            headers["x-forwarded-host"], headers["x-forwarded-port"]) == (
        "https", EXTERNAL_IP, "a.tls.test", "443")
    assert answers[3].json["headers"]["x-forwarded-proto"] == "http"
    # Each name gets its own certificate, and nothing else does.
    wrong = curl(lab, ip, [Request("a.tls.test", tls=True, cacert=b)])[0]
    assert (wrong.status, wrong.verified) == (0, False)
    assert [served_subject(lab, ip, h) for h in ("a.tls.test", "b.tls.test", "c.tls.test")] \
        == ["a.tls.test", "b.tls.test", controller.DEFAULT_CERT_NAME]

    # A Secret rotated: the new certificate is served, with no reload.
    reloads = metrics(lab)["reloads_total"]
    crt, key = self_signed("a.tls.test")
    a2 = tmp_path / "a2.pem"
    a2.write_bytes(crt)
    s.client.replace(SECRET, s.ns, "a-tls", tls_secret("a-tls", crt, key))
    routed(lab, ip, [Request("a.tls.test", tls=True, cacert=a2)], ["alpha"])
    assert not get(lab, ip, "a.tls.test", tls=True, cacert=a).verified
    assert metrics(lab)["reloads_total"] == reloads


# -- bad input --------------------------------------------------------------------------------


MALFORMED = [
    ("not-http", b"GARBAGE\r\n\r\n"),
    ("bad-header", b"GET / HTTP/1.1\r\nHost: ok.test\r\nNo colon here\r\n\r\n"),
    ("fragment", b"GET /a#b HTTP/1.1\r\nHost: ok.test\r\n\r\n"),
    ("slash-in-host", b"GET / HTTP/1.1\r\nHost: ok.test/x\r\n\r\n"),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
    ("no-host-in-http/1.1", b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n"),
    ("two-lengths", b"POST / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 1\r\n"
                    b"Content-Length: 2\r\n\r\nxx"),
]


def test_malformed_requests_get_400(lab: TestCluster, ip: str, s: Scope) -> None:
    echo_backends(s, "web")
    s.create(ING, ingress("ok", rule(None, path("/", "web"))))
    routed(lab, ip, [Request("ok.test")], ["web"])
    for what, request in MALFORMED:
        assert (what, raw_http(lab, ip, request)) == (what, b"HTTP/1.1 400 Bad request")
    assert raw_http(lab, ip, b"GET / HTTP/1.1\r\nHost: ok.test\r\n\r\n") == b"HTTP/1.1 200 OK"
    # HTTP/1.0 may omit Host: it meets the rules without a host, here "/" -> web
    assert raw_http(lab, ip, b"GET / HTTP/1.0\r\n\r\n") == b"HTTP/1.1 200 OK"


REJECTED = [
    ("newline-in-host", rule("evil.test\n  bind :8888", path("/", "web")),
     "spec.rules[0].host"),
    ("space-in-host", rule("evil.test use_backend x", path("/", "web")), "spec.rules[0].host"),
    ("double-slash", rule("evil.test", path("/a//b", "web")), "must not contain '//'"),
    ("dot-dot", rule("evil.test", path("/a/../b", "web", "Exact")), "must not contain '/../'"),
    ("dot", rule("evil.test", path("/a/./b", "web")), "must not contain '/./'"),
    ("encoded-slash", rule("evil.test", path("/a%2fb", "web")), "must not contain '%2f'"),
    ("relative", rule("evil.test", path("x", "web")), "must be an absolute path"),
]


def test_injection_is_rejected_by_the_api_or_rendered_inert(lab: TestCluster, ip: str,
                                                            s: Scope) -> None:
    echo_backends(s, "web")
    # Rejected by the API (422), as Kubernetes' validation does.
    for what, bad_rule, message in REJECTED:
        with pytest.raises(ApiError) as e:
            s.create(ING, ingress("evil", bad_rule))
        assert (what, e.value.status) == (what, 422)
        assert message in e.value.message, (what, e.value.message)

    # Accepted by the API, rendered inert: ImplementationSpecific paths are not checked by
    # the API; those no request can carry are dropped with a warning, the others are map
    # keys (data). Annotations are never read.
    s.create(ING, ingress(
        "inert",
        rule("inert.test", path("/ok", "web"),
             path("/x use_backend svc_evil", "web", "ImplementationSpecific"),
             path("/y\n    bind :8888", "web", "ImplementationSpecific"),
             path("/z}{'\"\\", "web", "Exact")),
        annotations={"haproxy.org/backend-config-snippet": "http-request return status 299",
                     "nginx.ingress.kubernetes.io/server-snippet": "return 299;",
                     "x.example/y": "a\n  bind :8888"}))
    cases = [(Request("inert.test", "/ok"), "web"),
             (Request("inert.test", "/z}{'\"\\"), "web"),  # the literal path, routed as data
             (Request("inert.test", "/x%20use_backend%20svc_evil"), "404"),
             (Request("inert.test", "/y"), "404")]
    routed(lab, ip, [r for r, _ in cases], [w for _, w in cases])
    config = (haproxy_dir(lab) / "haproxy.cfg").read_text()
    maps = "".join(p.read_text() for p in haproxy_dir(lab).glob("*.map"))
    for payload in ("svc_evil", "bind :8888", "299", "use_backend svc"):
        assert payload not in config and payload not in maps, payload
    assert "inert.test/z}{'\"\\ svc_" in maps
    warnings = [line.split(" WARNING podnet.ingress: ", 1)[1]
                for line in controller_log(lab).splitlines()
                if f"{s.ns}/inert" in line and " WARNING " in line]
    assert [w.split(": must")[0] for w in warnings] == [
        f"{s.ns}/inert: spec.rules[0].http.paths[1].path '/x use_backend svc_evil'",
        f"{s.ns}/inert: spec.rules[0].http.paths[2].path '/y\\n    bind :8888'"], warnings
    assert metrics(lab)["errors_total"] == 0


# -- the controller's life (last: it takes the ingress down for a moment) ---------------------


def test_haproxy_goes_with_its_controller_and_comes_back_with_the_pod(lab: TestCluster,
                                                                      ip: str, s: Scope) -> None:
    echo_backends(s, "web")
    s.create(ING, ingress("web", rule("life.test", path("/", "web"))))
    routed(lab, ip, [Request("life.test")], ["web"])
    pod = ingress_pod(lab)
    procs = pod_processes(lab.name, pod["metadata"]["uid"])
    (ctl,) = [p for p, (_, args) in procs.items() if "podnet.ingress.main" in args]
    haproxies = {p for p, (_, args) in procs.items() if Path(args[0]).name == "haproxy"}

    os.kill(ctl, signal.SIGKILL)  # no chance to stop HAProxy: the parent-death signal does
    wait_for("haproxy gone with its controller",
             lambda: not haproxies & set(pod_processes(lab.name, pod["metadata"]["uid"])),
             timeout=30)

    # restartPolicy Always: a new controller, a new HAProxy, the same routes and status.
    def restarted() -> bool:
        p = ingress_pod(lab)
        restarts = p["status"]["containerStatuses"][0]["restartCount"]
        return restarts == pod["status"]["containerStatuses"][0]["restartCount"] + 1 \
            and addons.pod_ready(p)
    wait_for("the controller restarted and Ready", restarted, timeout=90)
    routed(lab, ip, [Request("life.test")], ["web"])
    procs = pod_processes(lab.name, pod["metadata"]["uid"])
    assert len([p for p, (_, args) in procs.items() if Path(args[0]).name == "haproxy"]) == 2
    assert status_ips(s, "web") == [ip]
