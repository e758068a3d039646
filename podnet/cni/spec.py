"""The CNI specification (1.1) as data and pure functions: no I/O.

What both sides of the protocol need:

- errors: CniError carries the spec's error object (code, msg, details); the well-known codes
  and the codes podnet-cni adds (100 and up, as the spec allows);
- versions: parsing, the versions each side speaks, and the negotiation a runtime does between
  a configuration list's `cniVersion`/`cniVersions` and what every plugin reports on VERSION;
- configuration lists: parsing and validation, and the per-plugin execution configuration the
  runtime derives (name, cniVersion, prevResult, runtimeConfig in; capabilities out);
- the environment of a call (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS,
  CNI_PATH) and the checks on its values;
- results: validation, and conversion between 0.3.x/0.4.0 and 1.x shapes;
- GC's `cni.dev/valid-attachments`.

Start-up time matters: the podnet-cni plugin imports this module in a fresh process for every
call, so it imports nothing at run time beyond the interpreter's core (no typing, re, enum,
dataclasses or ipaddress; ipaddress is imported lazily where only the runtime needs it).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TypeAlias

    Obj: TypeAlias = dict[str, Any]

# -- error codes -------------------------------------------------------------------------------
# Well-known codes (spec, "Error" result type). 0-99 are reserved for the spec.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2  # the message must name the key and the value
ERR_UNKNOWN_CONTAINER = 3  # the runtime need not clean up after it
ERR_INVALID_ENV = 4  # the message must name the variables
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_NOT_AVAILABLE = 50  # STATUS: cannot service ADD
ERR_LIMITED_CONNECTIVITY = 51  # STATUS: and existing containers may have limited connectivity
# podnet-cni's own codes (the spec leaves 100 and up to plugins).
ERR_INTERFACE_EXISTS = 100  # ADD: the interface is already in the container (spec: MUST fail)
ERR_CHECK_FAILED = 101  # CHECK: the attachment is not what prevResult says
ERR_INTERNAL = 999  # an unexpected failure (the reference plugins' library uses 999 too)


class CniError(Exception):
    """The spec's error object: a numeric code, a short message and optional details."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI error {code}: {msg}" + (f" ({details})" if details else ""))
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> Obj:
        out: Obj = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def error_from_output(obj: object, *, plugin: str, stderr: str = "") -> CniError:
    """The CniError a failed plugin reported on stdout, or a generic one if it reported none."""
    if isinstance(obj, dict):
        code, msg = obj.get("code"), obj.get("msg")
        if isinstance(code, int) and not isinstance(code, bool) and isinstance(msg, str):
            details = obj.get("details")
            return CniError(code, msg, details if isinstance(details, str) else "")
    return CniError(ERR_INTERNAL, f"plugin {plugin} failed without an error result",
                    stderr.strip()[-2000:])


# -- versions ----------------------------------------------------------------------------------
# The versions the runtime side handles (results before 0.3.0 have another shape), and the
# versions podnet-cni implements.
RUNTIME_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
PLUGIN_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"

Version = tuple[int, int, int]


def parse_version(text: object, *, field: str = "cniVersion") -> Version:
    """"1.1.0" -> (1, 1, 0); "0.4" -> (0, 4, 0). Anything else is ERR_INCOMPATIBLE_VERSION."""
    if isinstance(text, str):
        parts = text.split(".")
        if 1 <= len(parts) <= 3 and all(p.isdigit() and p.isascii() for p in parts):
            nums = [int(p) for p in parts] + [0] * (3 - len(parts))
            return nums[0], nums[1], nums[2]
    raise CniError(ERR_INCOMPATIBLE_VERSION, f"{field}: invalid version {text!r}: "
                   "want MAJOR.MINOR.PATCH, e.g. \"1.1.0\"")


def version_at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


def _highest(versions: Iterable[str]) -> str:
    return max(versions, key=parse_version)


def negotiate_version(declared: str | None, listed: Sequence[str],
                      plugins: Mapping[str, Sequence[str]],
                      runtime_versions: Sequence[str] = RUNTIME_VERSIONS) -> str:
    """The cniVersion a runtime uses for a configuration list.

    The candidates are `cniVersions` plus `cniVersion` (as libcni does, spec 1.1), keeping those
    this runtime speaks. The choice is the highest candidate that every plugin (by its VERSION
    answer, `plugins`: type -> supportedVersions) supports. When no candidate is common, the
    highest version of the same major as the highest candidate, and not above it, that all
    plugins and the runtime support: a 1.1.0 configuration still drives plugins that stop at
    1.0.0 (configurations are compatible within a major version).
    """
    wanted = [*listed, *([declared] if declared else [])]
    for v in wanted:
        parse_version(v, field="cniVersions")
    known = {parse_version(v): v for v in runtime_versions}
    candidates = {parse_version(v) for v in wanted} & set(known)
    if not candidates:
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       f"none of the configuration's versions {sorted(set(wanted))} is "
                       f"supported by this runtime", f"runtime supports {list(runtime_versions)}")
    supported = [{parse_version(v) for v in vs if _is_version(v)} for vs in plugins.values()]
    common = set(candidates)
    for s in supported:
        common &= s
    if common:
        return known[max(common)]
    top = max(candidates)
    fallback = {v for v in known if v[0] == top[0] and v <= top}
    for s in supported:
        fallback &= s
    if fallback:
        return known[max(fallback)]
    detail = "; ".join(f"{t}: {list(vs)}" for t, vs in plugins.items())
    raise CniError(ERR_INCOMPATIBLE_VERSION,
                   f"no CNI version is supported by the configuration "
                   f"({sorted(set(wanted), key=parse_version)}) and all of its plugins", detail)


def _is_version(v: object) -> bool:
    try:
        parse_version(v)
    except CniError:
        return False
    return True


def supported_versions(obj: object) -> list[str]:
    """The list in a plugin's VERSION result (a very old plugin reports only its cniVersion)."""
    if isinstance(obj, dict):
        vs = obj.get("supportedVersions")
        if isinstance(vs, list) and all(isinstance(v, str) for v in vs):
            return list(vs)
        v = obj.get("cniVersion")
        if isinstance(v, str):
            return [v]
    raise CniError(ERR_DECODE, "invalid VERSION result: want an object with supportedVersions")


def version_result(cni_version: str, supported: Sequence[str] = PLUGIN_VERSIONS) -> Obj:
    return {"cniVersion": cni_version, "supportedVersions": list(supported)}


# -- names and the environment -----------------------------------------------------------------
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")


def _is_identifier(text: str) -> bool:
    """The spec's rule for container IDs and network names: an alphanumeric first, then
    alphanumerics, '_', '.' or '-'."""
    return bool(text) and text[0] in _ALNUM and all(c in _ID_CHARS for c in text)


def validate_container_id(container_id: str) -> None:
    if not container_id:
        raise CniError(ERR_INVALID_ENV, "CNI_CONTAINERID: required, and it is empty")
    if not _is_identifier(container_id):
        raise CniError(ERR_INVALID_ENV, f"CNI_CONTAINERID: invalid container ID "
                       f"{container_id!r}: must start with an alphanumeric character, followed "
                       "by alphanumerics, '_', '.' or '-'")


def validate_ifname(ifname: str) -> None:
    """Linux's rules, as the spec states them: not empty, not "." or "..", under 16 bytes, no
    '/', ':' or whitespace."""
    problem = ""
    if not ifname:
        problem = "required, and it is empty"
    elif ifname in (".", ".."):
        problem = f"invalid interface name {ifname!r}"
    elif len(ifname.encode()) > 15:
        problem = f"interface name {ifname!r} is longer than 15 bytes"
    elif any(c in "/:" or c.isspace() for c in ifname):
        problem = f"interface name {ifname!r} must not contain '/', ':' or whitespace"
    if problem:
        raise CniError(ERR_INVALID_ENV, f"CNI_IFNAME: {problem}")


def validate_network_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise CniError(ERR_INVALID_CONFIG, "name: required: the network's name")
    if not _is_identifier(name):
        raise CniError(ERR_INVALID_CONFIG, f"name: invalid network name {name!r}: must start "
                       "with an alphanumeric character, followed by alphanumerics, '_', '.' "
                       "or '-'")
    return name


def format_cni_args(args: Mapping[str, str] | Sequence[tuple[str, str]],
                    *, ignore_unknown: bool = True) -> str:
    """CNI_ARGS: "K=V;K2=V2". With ignore_unknown (what containerd and CRI-O do), a leading
    IgnoreUnknown=1 tells plugins built on the reference library not to fail on keys they do not
    know, such as K8S_POD_NAMESPACE."""
    pairs = list(args.items()) if isinstance(args, dict) else list(args)
    for k, v in pairs:
        if not k or any(c in "=;" for c in k) or ";" in v:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: invalid pair {k!r}={v!r}: keys must be "
                           "non-empty without '=' or ';', values without ';'")
    if pairs and ignore_unknown and all(k != "IgnoreUnknown" for k, _ in pairs):
        pairs.insert(0, ("IgnoreUnknown", "1"))
    return ";".join(f"{k}={v}" for k, v in pairs)


def parse_cni_args(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: invalid pair {item!r}: want KEY=VALUE")
        out.append((key, value))
    return out


def cni_env(command: str, *, container_id: str = "", netns: str = "", ifname: str = "",
            args: str = "", path: Sequence[str] = (),
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one plugin call: `base` (the caller's environment) without any CNI_*
    variable, plus the protocol's variables. Attachment verbs (ADD, DEL, CHECK) carry the
    container ID, netns, interface and args; VERSION, STATUS and GC only the command and path."""
    env = {k: v for k, v in (base or {}).items() if not k.startswith("CNI_")}
    env["CNI_COMMAND"] = command
    if command in ("ADD", "DEL", "CHECK"):
        env["CNI_CONTAINERID"] = container_id
        env["CNI_NETNS"] = netns
        env["CNI_IFNAME"] = ifname
        env["CNI_ARGS"] = args
    env["CNI_PATH"] = ":".join(path)
    return env


# -- configuration lists -----------------------------------------------------------------------
class NetworkConfigList:
    """A parsed, validated configuration list (spec section 1)."""

    __slots__ = ("cni_version", "cni_versions", "disable_check", "disable_gc", "name",
                 "plugins", "raw")

    def __init__(self, name: str, cni_version: str | None, cni_versions: list[str],
                 disable_check: bool, disable_gc: bool, plugins: list[Obj], raw: Obj) -> None:
        self.name = name
        self.cni_version = cni_version
        self.cni_versions = cni_versions
        self.disable_check = disable_check
        self.disable_gc = disable_gc
        self.plugins = plugins
        self.raw = raw

    @property
    def types(self) -> list[str]:
        return [str(p["type"]) for p in self.plugins]


def _flag(obj: Obj, key: str) -> bool:
    """disableCheck/disableGC: a boolean, or "true"/"false" as libcni also accepts."""
    value = obj.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise CniError(ERR_INVALID_CONFIG, f"{key}: must be a boolean, got {value!r}")


def validate_plugin_type(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise CniError(ERR_INVALID_CONFIG, f"{field}: required: the plugin's executable name")
    if "/" in value or "\\" in value or value in (".", ".."):
        raise CniError(ERR_INVALID_CONFIG, f"{field}: invalid plugin type {value!r}: must be "
                       "a file name, without '/' or '\\'")
    return value


def parse_conflist(obj: object) -> NetworkConfigList:
    if not isinstance(obj, dict):
        raise CniError(ERR_INVALID_CONFIG, "configuration list: must be a JSON object")
    name = validate_network_name(obj.get("name"))
    declared = obj.get("cniVersion")
    if declared is not None:
        parse_version(declared)
    listed = obj.get("cniVersions", [])
    if not isinstance(listed, list):
        raise CniError(ERR_INVALID_CONFIG, f"cniVersions: must be a list of versions, got "
                       f"{listed!r}")
    for i, v in enumerate(listed):
        parse_version(v, field=f"cniVersions[{i}]")
    if declared is None and not listed:
        raise CniError(ERR_INVALID_CONFIG, "cniVersion: required (or cniVersions)")
    plugins = obj.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise CniError(ERR_INVALID_CONFIG, "plugins: required: a non-empty list of plugin "
                       "configurations")
    for i, p in enumerate(plugins):
        if not isinstance(p, dict):
            raise CniError(ERR_INVALID_CONFIG, f"plugins[{i}]: must be a JSON object")
        validate_plugin_type(p.get("type"), f"plugins[{i}].type")
        caps = p.get("capabilities", {})
        if not isinstance(caps, dict):
            raise CniError(ERR_INVALID_CONFIG, f"plugins[{i}].capabilities: must be an object")
    return NetworkConfigList(name, declared, [str(v) for v in listed],
                             _flag(obj, "disableCheck"), _flag(obj, "disableGC"),
                             [dict(p) for p in plugins], dict(obj))


def plugin_config(plugin: Obj, name: str, cni_version: str, *, prev_result: Obj | None = None,
                  capability_args: Mapping[str, Any] | None = None,
                  extra: Mapping[str, Any] | None = None) -> Obj:
    """The execution configuration of one plugin (spec section 3): the plugin's own object
    with name and cniVersion set, prevResult when there is one, runtimeConfig made of the
    capability arguments the plugin declares, and without `capabilities`."""
    out = {k: v for k, v in plugin.items() if k != "capabilities"}
    out["name"] = name
    out["cniVersion"] = cni_version
    if prev_result is not None:
        out["prevResult"] = prev_result
    caps = plugin.get("capabilities") or {}
    runtime_config = {k: v for k, v in (capability_args or {}).items() if caps.get(k) is True}
    if runtime_config:
        out["runtimeConfig"] = runtime_config
    for k, v in (extra or {}).items():
        out[k] = v
    return out


# -- GC ----------------------------------------------------------------------------------------
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
# The key an earlier text of spec 1.1 used; libcni sets both, and so does this runtime.
ATTACHMENTS_OLD = "cni.dev/attachments"


def gc_attachments(valid: Iterable[tuple[str, str]]) -> list[Obj]:
    return [{"containerID": c, "ifname": i} for c, i in valid]


def parse_gc_attachments(conf: Obj) -> set[tuple[str, str]] | None:
    """The (containerID, ifname) pairs a GC keeps; None when the key is missing."""
    raw = conf.get(VALID_ATTACHMENTS, conf.get(ATTACHMENTS_OLD))
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise CniError(ERR_INVALID_CONFIG, f"{VALID_ATTACHMENTS}: must be a list")
    out: set[tuple[str, str]] = set()
    for i, a in enumerate(raw):
        cid = a.get("containerID") if isinstance(a, dict) else None
        ifname = a.get("ifname") if isinstance(a, dict) else None
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise CniError(ERR_INVALID_CONFIG, f"{VALID_ATTACHMENTS}[{i}]: want "
                           "{\"containerID\": ..., \"ifname\": ...}")
        out.add((cid, ifname))
    return out


# -- IPv4 (light helpers for the plugin; the runtime validates with ipaddress) -----------------
def ip4_to_int(text: object, field: str = "address") -> int:
    if isinstance(text, str):
        parts = text.split(".")
        if len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3 for p in parts):
            nums = [int(p) for p in parts]
            if all(n <= 255 for n in nums):
                return (nums[0] << 24) | (nums[1] << 16) | (nums[2] << 8) | nums[3]
    raise CniError(ERR_INVALID_CONFIG, f"{field}: invalid IPv4 address {text!r}")


def int_to_ip4(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def parse_cidr4(text: object, field: str = "subnet") -> tuple[int, int]:
    """"10.244.1.5/24" -> (address as int, 24). The host bits may be set."""
    if isinstance(text, str) and text.count("/") == 1:
        addr, _, plen = text.partition("/")
        if plen.isdigit() and plen.isascii() and int(plen) <= 32:
            return ip4_to_int(addr, field), int(plen)
    raise CniError(ERR_INVALID_CONFIG, f"{field}: invalid IPv4 CIDR {text!r}")


def mask4(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


# -- results -----------------------------------------------------------------------------------
def _check_ip(value: object, where: str, *, cidr: bool) -> str:
    import ipaddress  # the runtime only: the plugin never validates results this way

    try:
        if not isinstance(value, str):
            raise ValueError
        if cidr:
            ipaddress.ip_interface(value)
            if "/" not in value:
                raise ValueError
        else:
            ipaddress.ip_address(value)
    except ValueError:
        kind = "an IP address in CIDR notation" if cidr else "an IP address"
        raise CniError(ERR_DECODE, f"{where}: want {kind}, got {value!r}") from None
    return value


def _is_v6(address: str) -> bool:
    return ":" in address


def _str_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CniError(ERR_DECODE, f"{where}: want a list of strings, got {value!r}")
    return list(value)


def _int_field(obj: Obj, key: str, where: str) -> None:
    if key in obj and (not isinstance(obj[key], int) or isinstance(obj[key], bool)):
        raise CniError(ERR_DECODE, f"{where}.{key}: want an integer, got {obj[key]!r}")


def normalize_result(obj: object, cni_version: str, *, source: str = "result") -> Obj:
    """Validate a Success result and return it in the shape of `cni_version`: results of
    0.3.x/0.4.0 carry ips[].version ("4" or "6"), 1.x results do not. Fields this module does
    not know are kept."""
    if not isinstance(obj, dict):
        raise CniError(ERR_DECODE, f"{source}: want a JSON object")
    out = dict(obj)
    interfaces = obj.get("interfaces", [])
    if not isinstance(interfaces, list):
        raise CniError(ERR_DECODE, f"{source}.interfaces: want a list")
    for i, itf in enumerate(interfaces):
        where = f"{source}.interfaces[{i}]"
        if not isinstance(itf, dict) or not isinstance(itf.get("name"), str):
            raise CniError(ERR_DECODE, f"{where}: want an object with a name")
        for key in ("mac", "sandbox", "socketPath", "pciID"):
            if key in itf and not isinstance(itf[key], str):
                raise CniError(ERR_DECODE, f"{where}.{key}: want a string")
        _int_field(itf, "mtu", where)
    ips = obj.get("ips", [])
    if not isinstance(ips, list):
        raise CniError(ERR_DECODE, f"{source}.ips: want a list")
    new_ips = []
    legacy = parse_version(cni_version) < (1, 0, 0)
    for i, ipc in enumerate(ips):
        where = f"{source}.ips[{i}]"
        if not isinstance(ipc, dict):
            raise CniError(ERR_DECODE, f"{where}: want an object")
        address = _check_ip(ipc.get("address"), f"{where}.address", cidr=True)
        if "gateway" in ipc:
            _check_ip(ipc["gateway"], f"{where}.gateway", cidr=False)
        if "interface" in ipc:
            idx = ipc["interface"]
            if not isinstance(idx, int) or isinstance(idx, bool) or not (
                    0 <= idx < len(interfaces)):
                raise CniError(ERR_DECODE, f"{where}.interface: {idx!r} is not an index into "
                               f"interfaces ({len(interfaces)} entries)")
        entry = dict(ipc)
        if legacy:
            entry["version"] = "6" if _is_v6(address) else "4"
        else:
            entry.pop("version", None)
        new_ips.append(entry)
    out["ips"] = new_ips
    routes = obj.get("routes", [])
    if not isinstance(routes, list):
        raise CniError(ERR_DECODE, f"{source}.routes: want a list")
    for i, r in enumerate(routes):
        where = f"{source}.routes[{i}]"
        if not isinstance(r, dict):
            raise CniError(ERR_DECODE, f"{where}: want an object")
        _check_ip(r.get("dst"), f"{where}.dst", cidr=True)
        if "gw" in r:
            _check_ip(r["gw"], f"{where}.gw", cidr=False)
        for key in ("mtu", "advmss", "priority", "table", "scope"):
            _int_field(r, key, where)
    dns = obj.get("dns", {})
    if not isinstance(dns, dict):
        raise CniError(ERR_DECODE, f"{source}.dns: want an object")
    for key in ("nameservers", "search", "options"):
        if key in dns:
            _str_list(dns[key], f"{source}.dns.{key}")
    if "domain" in dns and not isinstance(dns["domain"], str):
        raise CniError(ERR_DECODE, f"{source}.dns.domain: want a string")
    out["cniVersion"] = cni_version
    return out
