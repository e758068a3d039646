"""A pod's resolv.conf, /etc/hosts and hostname, as kubelet and containerd write them."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.runtime import dnsconfig
from podnet.runtime.dnsconfig import DnsConfig, DnsWarning

UID = "0f8fad5b-d9cb-469f-a165-70867728950e"
HOST = "nameserver 10.255.255.53\n"
CLUSTER_SEARCH = "search default.svc.cluster.local svc.cluster.local cluster.local\n"


def pod(namespace: str = "default", name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": UID},
            "spec": {"containers": [{"name": "c"}], **spec}}


def resolv(p: dict[str, Any], host: str | None = HOST,
           cluster_dns: tuple[str, ...] = ("10.96.0.10",),
           domain: str = "cluster.local") -> dnsconfig.ResolvConf:
    return dnsconfig.resolv_conf(p, host_resolv_conf=host, cluster_dns=cluster_dns,
                                 cluster_domain=domain)


@pytest.mark.parametrize(("p", "host", "text"), [
    pytest.param(pod(), HOST,
                 CLUSTER_SEARCH + "nameserver 10.96.0.10\noptions ndots:5\n",
                 id="cluster-first"),
    pytest.param(pod(dnsPolicy="ClusterFirst"), HOST,
                 CLUSTER_SEARCH + "nameserver 10.96.0.10\noptions ndots:5\n",
                 id="cluster-first-explicit"),
    pytest.param(pod("shop"), HOST,
                 "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                 "nameserver 10.96.0.10\noptions ndots:5\n",
                 id="namespace-in-search"),
    pytest.param(pod(), "nameserver 1.1.1.1\nsearch corp.example. lab.example\noptions rotate\n",
                 "search default.svc.cluster.local svc.cluster.local cluster.local corp.example "
                 "lab.example\nnameserver 10.96.0.10\noptions ndots:5\n",
                 id="cluster-first-appends-node-searches-not-options"),
    pytest.param(pod(), "search cluster.local example.com\n",
                 CLUSTER_SEARCH.rstrip("\n") + " example.com\nnameserver 10.96.0.10\n"
                 "options ndots:5\n",
                 id="duplicate-search-dropped"),
    pytest.param(pod(dnsPolicy="Default"),
                 "# a comment\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch old.example\n"
                 "search a.example .\noptions timeout:2\noptions attempts:3 timeout:1\n",
                 "search a.example\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
                 "options timeout:1 attempts:3\n",
                 id="default-is-the-node-file-as-kubelet-reads-it"),
    pytest.param(pod(hostNetwork=True), "nameserver 1.1.1.1\n", "nameserver 1.1.1.1\n",
                 id="cluster-first-on-host-network-is-default"),
    pytest.param(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), HOST,
                 CLUSTER_SEARCH + "nameserver 10.96.0.10\noptions ndots:5\n",
                 id="cluster-first-with-host-net"),
    pytest.param(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["192.0.2.1"],
        "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}), HOST,
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\n"
        "options ndots:2 edns0\n",
        id="none-with-dns-config"),
    pytest.param(pod(dnsConfig={
        "nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["svc.cluster.local", "x.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "single-request-reopen"}]}), HOST,
        "search default.svc.cluster.local svc.cluster.local cluster.local x.example\n"
        "nameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:2 single-request-reopen\n",
        id="dns-config-merged-into-cluster-first"),
    pytest.param(pod(dnsPolicy="Default", dnsConfig={"options": [{"name": "ndots"}]}),
                 "nameserver 1.1.1.1\noptions ndots:3 rotate\n",
                 "nameserver 1.1.1.1\noptions ndots rotate\n",
                 id="option-without-value-replaces"),
    pytest.param(pod(dnsPolicy="Default"), None,
                 "search .\nnameserver 127.0.0.1\n",
                 id="default-without-node-file"),
    pytest.param(pod(dnsPolicy="Default"), "# nothing here\n", "# nothing here\n",
                 id="empty-config-copies-the-node-file"),
])
def test_resolv_conf(p, host, text):
    result = resolv(p, host)
    assert result.text == text
    assert result.warnings == ()


def test_cluster_first_without_cluster_dns_falls_back_to_default():
    result = resolv(pod(), "nameserver 1.1.1.1\n", cluster_dns=())
    assert result.text == "nameserver 1.1.1.1\n"
    assert result.warnings == (DnsWarning(
        "MissingClusterDNS",
        f'pod: "web_default({UID})". kubelet does not have ClusterDNS IP configured and cannot '
        'create Pod using "ClusterFirst" policy. Falling back to "Default" policy.'),)


def test_cluster_first_without_domain_keeps_node_searches():
    result = resolv(pod(), "search corp.example\n", domain="")
    assert result.text == "search corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"


def test_too_many_nameservers_keeps_three():
    p = pod(dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]})
    result = resolv(p)
    assert result.config.nameservers == ("10.96.0.10", "1.1.1.1", "8.8.8.8")
    assert result.warnings == (DnsWarning(
        "DNSConfigForming",
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
        "nameserver line is: 10.96.0.10 1.1.1.1 8.8.8.8"),)


def test_search_limits():
    many = [f"d{i}.example" for i in range(40)]
    result = resolv(pod(dnsPolicy="None", dnsConfig={"searches": many}))
    assert result.config.searches == tuple(many[:32])
    assert result.warnings[0].reason == "DNSConfigForming"
    assert result.warnings[0].message.endswith("the applied search line is: "
                                               + " ".join(many[:32]))


def test_search_path_longer_than_253_is_dropped():
    long = "a" * 250 + ".com"
    result = resolv(pod(dnsPolicy="None", dnsConfig={"searches": ["ok.example", long]}))
    assert result.config.searches == ("ok.example",)
    assert len(result.warnings) == 1


def test_search_line_cut_to_2048_characters_from_the_end():
    domains = [("x" * 200) + f".d{i:02d}" for i in range(12)]  # 204 characters each
    result = resolv(pod(dnsPolicy="None", dnsConfig={"searches": domains}))
    # 12 make 2459 characters; dropping the last two leaves 2049, still too many: 9 remain
    assert result.config.searches == tuple(domains[:9])
    assert len(result.warnings) == 1


@pytest.mark.parametrize(("text", "config"), [
    pytest.param("nameserver 1.1.1.1\n  nameserver   2.2.2.2  \nnameserver\n",
                 DnsConfig(("1.1.1.1", "2.2.2.2")), id="nameservers-accumulate"),
    pytest.param("search a b\nsearch c. d\n", DnsConfig((), ("c", "d")), id="last-search-wins"),
    pytest.param("options a:1 b\noptions a:2\n", DnsConfig((), (), ("a:2", "b")),
                 id="options-merge"),
    pytest.param("#nameserver 1.1.1.1\n", DnsConfig(), id="comment"),
])
def test_parse_resolv_conf(text, config):
    assert dnsconfig.parse_resolv_conf(text) == config


# -- /etc/hosts -----------------------------------------------------------------------------------

LOCAL = ("# Kubernetes-managed hosts file.\n"
         "127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "fe00::0\tip6-mcastprefix\n"
         "fe00::1\tip6-allnodes\n"
         "fe00::2\tip6-allrouters\n")


@pytest.mark.parametrize(("p", "ips", "text"), [
    pytest.param(pod(), ["10.244.1.5"], LOCAL + "10.244.1.5\tweb\n", id="pod-ip"),
    pytest.param(pod(), [], LOCAL, id="no-ip-yet"),
    pytest.param(pod(hostname="db-0"), ["10.244.1.5"], LOCAL + "10.244.1.5\tdb-0\n",
                 id="spec-hostname"),
    pytest.param(pod("shop", hostname="db-0", subdomain="db"), ["10.244.1.5"],
                 LOCAL + "10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n", id="subdomain"),
    pytest.param(pod(subdomain="db"), ["10.244.1.5", "fd00::5"],
                 LOCAL + "10.244.1.5\tweb.db.default.svc.cluster.local\tweb\n"
                 "fd00::5\tweb.db.default.svc.cluster.local\tweb\n", id="dual-stack"),
    pytest.param(pod(hostAliases=[{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                                  {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}]),
                 ["10.244.1.5"],
                 LOCAL + "10.244.1.5\tweb\n\n# Entries added by HostAliases.\n"
                 "127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n", id="host-aliases"),
])
def test_hosts_file(p, ips, text):
    assert dnsconfig.hosts_file(p, ips, cluster_domain="cluster.local") == text


def test_hosts_file_of_a_host_network_pod_is_the_nodes():
    p = pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}])
    text = dnsconfig.hosts_file(p, ["172.18.0.11"], cluster_domain="cluster.local",
                                node_hosts="127.0.0.1 localhost\n")
    assert text == ("# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
                    "\n# Entries added by HostAliases.\n1.2.3.4\tx\n")


# -- hostname -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("p", "hostname"), [
    pytest.param(pod(), "web", id="pod-name"),
    pytest.param(pod(hostname="db-0"), "db-0", id="spec-hostname"),
    pytest.param(pod(name="a" * 62 + "-b"), "a" * 62, id="cut-to-63-without-trailing-dash"),
    pytest.param(pod(subdomain="db"), "web", id="subdomain-alone-keeps-short-name"),
    pytest.param(pod(subdomain="db", setHostnameAsFQDN=True),
                 "web.db.default.svc.cluster.local", id="fqdn"),
    pytest.param(pod(setHostnameAsFQDN=True), "web", id="fqdn-without-subdomain"),
])
def test_uts_hostname(p, hostname):
    assert dnsconfig.uts_hostname(p, "cluster.local") == hostname


def test_fqdn_longer_than_64_is_refused():
    p = pod(name="w" * 40, subdomain="db", setHostnameAsFQDN=True)
    with pytest.raises(ValueError, match=r"is too long \(64 characters is the max, "
                                         r"69 characters requested\)"):
        dnsconfig.uts_hostname(p, "cluster.local")


@pytest.mark.parametrize(("p", "policy"), [
    pytest.param(pod(), "cluster", id="unset"),
    pytest.param(pod(dnsPolicy="Default"), "host", id="default"),
    pytest.param(pod(dnsPolicy="None"), "none", id="none"),
    pytest.param(pod(dnsPolicy="ClusterFirst", hostNetwork=True), "host", id="host-network"),
    pytest.param(pod(dnsPolicy="ClusterFirstWithHostNet", hostNetwork=True), "cluster",
                 id="with-host-net"),
])
def test_dns_policy(p, policy):
    assert dnsconfig.dns_policy(p) == policy
