"""CNI spec helpers (podnet.cni.spec) and the pure parts of the podnet-cni plugin: versions and
their negotiation, configuration lists, the environment of a call, results, errors, and the
plugin's answers that need no kernel (VERSION, bad input)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podnet.cni import plugin, spec
from podnet.cni.spec import CniError
from podnet.lab import names

PTP = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
OURS = ["0.4.0", "1.0.0", "1.1.0"]


# -- versions ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "want"), [
    pytest.param("1.1.0", (1, 1, 0), id="full"),
    pytest.param("0.4", (0, 4, 0), id="two-parts"),
    pytest.param("10.0.12", (10, 0, 12), id="multi-digit"),
])
def test_parse_version(text: str, want: tuple[int, int, int]) -> None:
    assert spec.parse_version(text) == want


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"), pytest.param("v1.0.0", id="prefix"),
    pytest.param("1.0.0.0", id="four-parts"), pytest.param("1.x.0", id="letter"),
    pytest.param(None, id="none"), pytest.param(1, id="number"),
])
def test_parse_version_rejects(text: Any) -> None:
    with pytest.raises(CniError) as e:
        spec.parse_version(text)
    assert e.value.code == spec.ERR_INCOMPATIBLE_VERSION
    assert repr(text) in e.value.msg


@pytest.mark.parametrize(("declared", "listed", "plugins", "want"), [
    pytest.param("1.1.0", ["1.0.0", "1.1.0"], {"podnet-cni": OURS}, "1.1.0", id="ours-1.1"),
    pytest.param("1.1.0", ["1.0.0", "1.1.0"], {"ptp": PTP}, "1.0.0", id="ptp-listed"),
    pytest.param("1.1.0", [], {"ptp": PTP}, "1.0.0", id="ptp-same-major-fallback"),
    pytest.param("1.0.0", ["1.1.0"], {"podnet-cni": OURS, "ptp": PTP}, "1.0.0", id="chain"),
    pytest.param("0.4.0", [], {"podnet-cni": OURS, "ptp": PTP}, "0.4.0", id="old-list"),
    pytest.param(None, ["1.0.0", "2.0.0"], {"podnet-cni": OURS}, "1.0.0",
                 id="above-runtime-ignored"),
    pytest.param("1.1.0", [], {}, "1.1.0", id="no-plugins"),
])
def test_negotiate_version(declared: str | None, listed: list[str],
                           plugins: dict[str, list[str]], want: str) -> None:
    assert spec.negotiate_version(declared, listed, plugins) == want


def test_negotiate_version_no_common() -> None:
    with pytest.raises(CniError) as e:
        spec.negotiate_version("1.0.0", [], {"old": ["0.3.1"], "podnet-cni": OURS})
    assert e.value.code == spec.ERR_INCOMPATIBLE_VERSION
    assert e.value.msg == ("no CNI version is supported by the configuration (['1.0.0']) and "
                           "all of its plugins")
    assert e.value.details == "old: ['0.3.1']; podnet-cni: ['0.4.0', '1.0.0', '1.1.0']"


def test_negotiate_version_unknown_to_runtime() -> None:
    with pytest.raises(CniError) as e:
        spec.negotiate_version("0.2.0", [], {"x": ["0.2.0"]})
    assert e.value.code == spec.ERR_INCOMPATIBLE_VERSION
    assert "['0.2.0'] is supported by this runtime" in e.value.msg


@pytest.mark.parametrize(("obj", "want"), [
    pytest.param({"cniVersion": "1.0.0", "supportedVersions": PTP}, PTP, id="list"),
    pytest.param({"cniVersion": "0.1.0"}, ["0.1.0"], id="very-old"),
])
def test_supported_versions(obj: object, want: list[str]) -> None:
    assert spec.supported_versions(obj) == want


def test_supported_versions_rejects_junk() -> None:
    with pytest.raises(CniError) as e:
        spec.supported_versions(["1.0.0"])
    assert e.value.code == spec.ERR_DECODE


# -- configuration lists -----------------------------------------------------------------------
def conflist(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cniVersion": "1.1.0", "name": "podnet",
                            "plugins": [{"type": "podnet-cni"}]}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_parse_conflist() -> None:
    conf = spec.parse_conflist(conflist(cniVersions=["1.0.0", "1.1.0"], disableCheck="true",
                                        plugins=[{"type": "ptp"}, {"type": "portmap"}]))
    assert (conf.name, conf.cni_version, conf.cni_versions) == ("podnet", "1.1.0",
                                                                 ["1.0.0", "1.1.0"])
    assert (conf.disable_check, conf.disable_gc) == (True, False)
    assert conf.types == ["ptp", "portmap"]


@pytest.mark.parametrize(("obj", "msg"), [
    pytest.param([], "configuration list: must be a JSON object", id="not-object"),
    pytest.param(conflist(name=None), "name: required: the network's name", id="no-name"),
    pytest.param(conflist(name="-x"), "name: invalid network name '-x': must start with an "
                 "alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
                 id="bad-name"),
    pytest.param(conflist(cniVersion=None), "cniVersion: required (or cniVersions)",
                 id="no-version"),
    pytest.param(conflist(cniVersions="1.0.0"), "cniVersions: must be a list of versions, "
                 "got '1.0.0'", id="versions-not-list"),
    pytest.param(conflist(plugins=[]), "plugins: required: a non-empty list of plugin "
                 "configurations", id="no-plugins"),
    pytest.param(conflist(plugins=[{"type": "ptp"}, {}]), "plugins[1].type: required: the "
                 "plugin's executable name", id="no-type"),
    pytest.param(conflist(plugins=[{"type": "../ptp"}]), "plugins[0].type: invalid plugin "
                 "type '../ptp': must be a file name, without '/' or '\\'", id="path-type"),
    pytest.param(conflist(plugins=["ptp"]), "plugins[0]: must be a JSON object",
                 id="plugin-not-object"),
    pytest.param(conflist(disableGC="yes"), "disableGC: must be a boolean, got 'yes'",
                 id="bad-flag"),
])
def test_parse_conflist_rejects(obj: object, msg: str) -> None:
    with pytest.raises(CniError) as e:
        spec.parse_conflist(obj)
    assert (e.value.code, e.value.msg) == (spec.ERR_INVALID_CONFIG, msg)


def test_parse_conflist_rejects_bad_listed_version() -> None:
    with pytest.raises(CniError) as e:
        spec.parse_conflist(conflist(cniVersions=["1.0.0", "one"]))
    assert e.value.code == spec.ERR_INCOMPATIBLE_VERSION
    assert e.value.msg.startswith("cniVersions[1]: invalid version 'one'")


def test_plugin_config() -> None:
    plugin_conf = {"type": "portmap", "capabilities": {"portMappings": True, "bandwidth": False},
                   "snat": True}
    out = spec.plugin_config(plugin_conf, "podnet", "1.0.0", prev_result={"ips": []},
                             capability_args={"portMappings": [1], "bandwidth": {},
                                              "mac": "x"},
                             extra={spec.VALID_ATTACHMENTS: []})
    assert out == {"type": "portmap", "snat": True, "name": "podnet", "cniVersion": "1.0.0",
                   "prevResult": {"ips": []}, "runtimeConfig": {"portMappings": [1]},
                   spec.VALID_ATTACHMENTS: []}
    assert "capabilities" in plugin_conf  # the input is left alone


def test_plugin_config_minimal() -> None:
    assert spec.plugin_config({"type": "ptp", "mtu": 1400}, "n", "1.1.0") == {
        "type": "ptp", "mtu": 1400, "name": "n", "cniVersion": "1.1.0"}


# -- the environment ---------------------------------------------------------------------------
def test_cni_env_attachment_verb() -> None:
    env = spec.cni_env("ADD", container_id="c1", netns="/run/netns/p", ifname="eth0",
                       args="IgnoreUnknown=1;A=b", path=["/opt/cni/bin", "/usr/lib/cni"],
                       base={"PATH": "/usr/bin", "CNI_IFNAME": "stale", "HOME": "/root"})
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "CNI_COMMAND": "ADD",
                   "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0",
                   "CNI_ARGS": "IgnoreUnknown=1;A=b", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"}


@pytest.mark.parametrize("command", ["VERSION", "STATUS", "GC"])
def test_cni_env_network_verbs(command: str) -> None:
    env = spec.cni_env(command, container_id="c1", path=["/bin"], base={"CNI_NETNS": "x"})
    assert env == {"CNI_COMMAND": command, "CNI_PATH": "/bin"}


def test_format_cni_args() -> None:
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0",
            "K8S_POD_INFRA_CONTAINER_ID": "abc", "K8S_POD_UID": "u-1"}
    assert spec.format_cni_args(args) == (
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
        "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1")
    assert spec.format_cni_args({}) == ""
    assert spec.format_cni_args([("IgnoreUnknown", "true"), ("A", "")]) == (
        "IgnoreUnknown=true;A=")
    assert spec.format_cni_args({"A": "1"}, ignore_unknown=False) == "A=1"


@pytest.mark.parametrize("args", [{"A;B": "1"}, {"A=B": "1"}, {"": "1"}, {"A": "x;y"}])
def test_format_cni_args_rejects(args: dict[str, str]) -> None:
    with pytest.raises(CniError) as e:
        spec.format_cni_args(args)
    assert e.value.code == spec.ERR_INVALID_ENV
    assert e.value.msg.startswith("CNI_ARGS: invalid pair")


def test_parse_cni_args() -> None:
    assert spec.parse_cni_args("IgnoreUnknown=1;A=b=c;;B=") == [
        ("IgnoreUnknown", "1"), ("A", "b=c"), ("B", "")]
    with pytest.raises(CniError) as e:
        spec.parse_cni_args("A=1;oops")
    assert (e.value.code, e.value.msg) == (spec.ERR_INVALID_ENV,
                                           "CNI_ARGS: invalid pair 'oops': want KEY=VALUE")


@pytest.mark.parametrize("cid", ["c1", "3f6940ab5ab4", "a_b.c-d", "A"])
def test_container_id_valid(cid: str) -> None:
    spec.validate_container_id(cid)


@pytest.mark.parametrize(("cid", "msg"), [
    pytest.param("", "CNI_CONTAINERID: required, and it is empty", id="empty"),
    pytest.param("-c", "CNI_CONTAINERID: invalid container ID '-c': must start with an "
                 "alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
                 id="leading-dash"),
    pytest.param("a/b", "CNI_CONTAINERID: invalid container ID 'a/b': must start with an "
                 "alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
                 id="slash"),
])
def test_container_id_invalid(cid: str, msg: str) -> None:
    with pytest.raises(CniError) as e:
        spec.validate_container_id(cid)
    assert (e.value.code, e.value.msg) == (spec.ERR_INVALID_ENV, msg)


@pytest.mark.parametrize("ifname", ["eth0", "net1", "a" * 15, "vlan@1"])
def test_ifname_valid(ifname: str) -> None:
    spec.validate_ifname(ifname)


@pytest.mark.parametrize(("ifname", "msg"), [
    pytest.param("", "CNI_IFNAME: required, and it is empty", id="empty"),
    pytest.param("..", "CNI_IFNAME: invalid interface name '..'", id="dotdot"),
    pytest.param("a" * 16, f"CNI_IFNAME: interface name '{'a' * 16}' is longer than 15 bytes",
                 id="long"),
    pytest.param("a/b", "CNI_IFNAME: interface name 'a/b' must not contain '/', ':' or "
                 "whitespace", id="slash"),
    pytest.param("a b", "CNI_IFNAME: interface name 'a b' must not contain '/', ':' or "
                 "whitespace", id="space"),
    pytest.param("e:0", "CNI_IFNAME: interface name 'e:0' must not contain '/', ':' or "
                 "whitespace", id="colon"),
])
def test_ifname_invalid(ifname: str, msg: str) -> None:
    with pytest.raises(CniError) as e:
        spec.validate_ifname(ifname)
    assert (e.value.code, e.value.msg) == (spec.ERR_INVALID_ENV, msg)


# -- results and errors ------------------------------------------------------------------------
RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "veth1", "mac": "aa:bb:cc:dd:ee:ff"},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:00", "sandbox": "/run/netns/p"}],
    "ips": [{"address": "10.244.1.5/32", "gateway": "10.244.1.1", "interface": 1},
            {"address": "fd00::5/128", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}


def test_normalize_result_to_legacy_and_back() -> None:
    old = spec.normalize_result(RESULT, "0.4.0")
    assert old["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in old["ips"]] == ["4", "6"]
    new = spec.normalize_result(old, "1.1.0")
    assert new == {**RESULT, "cniVersion": "1.1.0"}


@pytest.mark.parametrize(("patch", "msg"), [
    pytest.param({"ips": [{"address": "10.244.1.5"}]}, "result.ips[0].address: want an IP "
                 "address in CIDR notation, got '10.244.1.5'", id="no-prefix"),
    pytest.param({"ips": [{"address": "10.0.0.1/8", "interface": 2}]}, "result.ips[0]."
                 "interface: 2 is not an index into interfaces (2 entries)", id="bad-index"),
    pytest.param({"ips": [{"address": "10.0.0.1/8", "gateway": "x"}]}, "result.ips[0]."
                 "gateway: want an IP address, got 'x'", id="bad-gateway"),
    pytest.param({"routes": [{"gw": "10.0.0.1"}]}, "result.routes[0].dst: want an IP address "
                 "in CIDR notation, got None", id="route-no-dst"),
    pytest.param({"interfaces": [{"mac": "x"}]}, "result.interfaces[0]: want an object with a "
                 "name", id="interface-no-name"),
    pytest.param({"dns": {"nameservers": "10.96.0.10"}}, "result.dns.nameservers: want a list "
                 "of strings, got '10.96.0.10'", id="dns"),
    pytest.param({"routes": [{"dst": "0.0.0.0/0", "mtu": "1400"}]}, "result.routes[0].mtu: "
                 "want an integer, got '1400'", id="route-mtu"),
])
def test_normalize_result_rejects(patch: dict[str, Any], msg: str) -> None:
    with pytest.raises(CniError) as e:
        spec.normalize_result({**RESULT, **patch}, "1.0.0")
    assert (e.value.code, e.value.msg) == (spec.ERR_DECODE, msg)


def test_error_object() -> None:
    err = CniError(7, "Invalid Configuration", "too small")
    assert err.to_dict("1.0.0") == {"cniVersion": "1.0.0", "code": 7,
                                    "msg": "Invalid Configuration", "details": "too small"}
    assert CniError(11, "later").to_dict("1.1.0") == {"cniVersion": "1.1.0", "code": 11,
                                                      "msg": "later"}


def test_error_from_output() -> None:
    e = spec.error_from_output({"code": 999, "msg": "boom", "details": "d"}, plugin="ptp")
    assert (e.code, e.msg, e.details) == (999, "boom", "d")
    e = spec.error_from_output(None, plugin="ptp", stderr="panic: x\n")
    assert (e.code, e.msg, e.details) == (999, "plugin ptp failed without an error result",
                                          "panic: x")
    e = spec.error_from_output({"code": True, "msg": "x"}, plugin="p")
    assert e.code == spec.ERR_INTERNAL


def test_gc_attachments() -> None:
    listed = spec.gc_attachments([("c1", "eth0"), ("c2", "net1")])
    assert listed == [{"containerID": "c1", "ifname": "eth0"},
                      {"containerID": "c2", "ifname": "net1"}]
    assert spec.parse_gc_attachments({spec.VALID_ATTACHMENTS: listed}) == {
        ("c1", "eth0"), ("c2", "net1")}
    assert spec.parse_gc_attachments({spec.ATTACHMENTS_OLD: listed[:1]}) == {("c1", "eth0")}
    assert spec.parse_gc_attachments({}) is None
    with pytest.raises(CniError) as e:
        spec.parse_gc_attachments({spec.VALID_ATTACHMENTS: [{"containerID": "c1"}]})
    assert e.value.code == spec.ERR_INVALID_CONFIG


@pytest.mark.parametrize(("text", "value"), [
    ("10.244.1.5", 0x0AF40105), ("0.0.0.0", 0), ("255.255.255.255", 0xFFFFFFFF)])
def test_ip4(text: str, value: int) -> None:
    assert spec.ip4_to_int(text) == value
    assert spec.int_to_ip4(value) == text


@pytest.mark.parametrize("text", ["256.1.1.1", "1.2.3", "1.2.3.4.5", "a.b.c.d", "", "1.2.3.-4"])
def test_ip4_rejects(text: str) -> None:
    with pytest.raises(CniError) as e:
        spec.ip4_to_int(text, "gateway")
    assert (e.value.code, e.value.msg) == (spec.ERR_INVALID_CONFIG,
                                           f"gateway: invalid IPv4 address {text!r}")


def test_parse_cidr4() -> None:
    assert spec.parse_cidr4("10.244.1.0/24") == (0x0AF40100, 24)
    assert spec.mask4(24) == 0xFFFFFF00
    assert spec.mask4(0) == 0
    for bad in ("10.244.1.0", "10.244.1.0/33", "10.244.1.0/x"):
        with pytest.raises(CniError):
            spec.parse_cidr4(bad)


# -- the plugin, without a kernel --------------------------------------------------------------
@pytest.mark.parametrize(("cid", "ifname"), [("c1", "eth0"), ("3f6940ab5ab43bc5", "net1"),
                                             ("a" * 64, "eth0")])
def test_host_veth_name_is_the_naming_contract(cid: str, ifname: str) -> None:
    assert plugin.host_veth_name(cid, ifname) == names.pod_veth(cid, ifname)
    assert plugin.is_host_veth(plugin.host_veth_name(cid, ifname))


@pytest.mark.parametrize("name", ["eth0", "pn123", "pnXXXXXXXXXXX", "veth4e7bf4f7"])
def test_not_host_veth(name: str) -> None:
    assert not plugin.is_host_veth(name)


@pytest.mark.parametrize("obj", [
    RESULT, [], "é", {"a": [1, 2.5, True, None, {"b": ""}]}, 0, -3.25, "a\"b\\c\n"])
def test_json_codec_agrees_with_json(obj: Any) -> None:
    text = plugin.dumps(obj)
    assert json.loads(text) == obj
    assert plugin.loads(text) == obj
    assert plugin.loads(f" \n{json.dumps(obj, indent=2)}\t") == obj


@pytest.mark.parametrize("text", ["", "{", "[1] 2", "NaN", "{'a': 1}"])
def test_json_codec_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        plugin.loads(text)


ENV = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x",
       "CNI_PATH": "/usr/lib/cni"}


def run(command: str, conf: object, env: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    status, out = plugin.run(command, ENV if env is None else env, raw)
    return status, json.loads(out) if out else None


def test_plugin_version() -> None:
    assert run("VERSION", {"cniVersion": "1.0.0"}) == (0, {
        "cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    assert run("VERSION", b"") == (0, {"cniVersion": "1.1.0",
                                       "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})


def plugin_conf(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni",
                            "ipam": {"type": "podnet", "subnet": "10.244.1.0/24",
                                     "dataDir": "/nonexistent/podnet-test"}}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(("command", "conf", "env", "code", "msg"), [
    pytest.param("FROB", plugin_conf(), ENV, 4, "CNI_COMMAND: unknown command 'FROB': want one "
                 "of ADD, DEL, CHECK, STATUS, GC, VERSION", id="unknown-command"),
    pytest.param("", plugin_conf(), ENV, 4, "CNI_COMMAND: unknown command '': want one of "
                 "ADD, DEL, CHECK, STATUS, GC, VERSION", id="no-command"),
    pytest.param("ADD", b"{not json", ENV, 6, None, id="bad-json"),
    pytest.param("ADD", [1], ENV, 6, "the network configuration on stdin must be a JSON "
                 "object", id="not-object"),
    pytest.param("ADD", plugin_conf(cniVersion="0.3.1"), ENV, 1, "incompatible CNI versions",
                 id="old-version"),
    pytest.param("ADD", plugin_conf(cniVersion=None), ENV, 1, "cniVersion: required",
                 id="no-version"),
    pytest.param("STATUS", plugin_conf(cniVersion="1.0.0"), ENV, 1, "STATUS needs cniVersion "
                 "1.1.0 or later; the configuration says 1.0.0", id="status-old"),
    pytest.param("ADD", plugin_conf(), {**ENV, "CNI_CONTAINERID": ""}, 4,
                 "CNI_CONTAINERID: required, and it is empty", id="no-container"),
    pytest.param("ADD", plugin_conf(), {**ENV, "CNI_IFNAME": "x" * 16}, 4,
                 f"CNI_IFNAME: interface name '{'x' * 16}' is longer than 15 bytes",
                 id="long-ifname"),
    pytest.param("ADD", plugin_conf(), {**ENV, "CNI_NETNS": ""}, 4,
                 "CNI_NETNS: required for ADD", id="no-netns"),
    pytest.param("ADD", plugin_conf(), {**ENV, "CNI_ARGS": "junk"}, 4,
                 "CNI_ARGS: invalid pair 'junk': want KEY=VALUE", id="bad-args"),
    pytest.param("ADD", plugin_conf(mtu=20), ENV, 7, "mtu: want an integer from 68 to 65535, "
                 "got 20", id="bad-mtu"),
    pytest.param("ADD", plugin_conf(ipam=None), ENV, 7, "ipam.type: required: \"podnet\" for "
                 "the built-in IPAM, or the name of an IPAM plugin in CNI_PATH", id="no-ipam"),
    pytest.param("ADD", plugin_conf(ipam={"type": "podnet", "subnet": "10.0.0.0/24",
                                          "reserve": 3}), ENV, 2,
                 "unsupported field ipam.reserve: 3 (podnet IPAM knows dataDir, gateway, "
                 "rangeEnd, rangeStart, ranges, routes, subnet, type)", id="ipam-unknown"),
    pytest.param("ADD", plugin_conf(name="a b"), ENV, 7, "name: invalid network name 'a b': "
                 "must start with an alphanumeric character, followed by alphanumerics, '_', "
                 "'.' or '-'", id="bad-name"),
    pytest.param("GC", plugin_conf(), ENV, 7, "cni.dev/valid-attachments: required for GC",
                 id="gc-without-list"),
    pytest.param("CHECK", plugin_conf(), ENV, 7, "prevResult: required for CHECK",
                 id="check-without-prev"),
    pytest.param("ADD", plugin_conf(deleteDelay="soon"), ENV, 7, "deleteDelay: want seconds "
                 "from 0 to 60, got 'soon'", id="bad-delay"),
])
def test_plugin_rejects(command: str, conf: object, env: dict[str, str], code: int,
                        msg: str | None) -> None:
    status, out = run(command, conf, env)
    assert status == 1
    assert out["code"] == code
    if msg is not None:
        assert out["msg"] == msg
    version = conf.get("cniVersion") if isinstance(conf, dict) else None
    assert out["cniVersion"] == (version or "1.1.0")


def test_plugin_incompatible_version_details() -> None:
    status, out = run("DEL", plugin_conf(cniVersion="2.0.0"))
    assert (status, out) == (1, {"cniVersion": "2.0.0", "code": 1,
                                 "msg": "incompatible CNI versions",
                                 "details": "config is '2.0.0', plugin supports ['0.4.0', "
                                            "'1.0.0', '1.1.0']"})


def test_plugin_add_on_missing_netns_is_unknown_container() -> None:
    status, out = run("ADD", plugin_conf(), {**ENV, "CNI_NETNS": "/nonexistent/netns"})
    assert (status, out["code"]) == (1, spec.ERR_UNKNOWN_CONTAINER)
    assert out["msg"] == "CNI_NETNS: network namespace /nonexistent/netns does not exist"
