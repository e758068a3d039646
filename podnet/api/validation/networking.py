"""Validation of the networking kinds: discovery.k8s.io/v1 EndpointSlice and networking.k8s.io/v1
Ingress, IngressClass and NetworkPolicy.

The rules, field paths and messages are Kubernetes' (pkg/apis/networking/validation and
pkg/apis/discovery/validation), rewritten. Objects arrive as decoded JSON, already defaulted;
`metadata` is checked elsewhere (meta.py). Any field may have the wrong JSON type: that is reported
as a FieldError, never raised.

Kubernetes parses IPs and CIDRs in these kinds "sloppily" (StrictIPCIDRValidation is off by
default): leading zeros in IPv4 octets, non-canonical IPv6, IPv4-mapped IPv6 and CIDRs with host
bits set are all accepted, so they are here.

`VALIDATORS[(apiVersion, kind)](new, old)` validates a create (old is None) or an update;
`STATUS_VALIDATORS` does the same for writes to the status subresource.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podnet.api import names
from podnet.api.errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)

Obj = dict[str, Any]
Errs = list[FieldError]
Validator = Callable[[Obj, Obj | None], list[FieldError]]

NETWORKING = "networking.k8s.io/v1"
DISCOVERY = "discovery.k8s.io/v1"

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_IMMUTABLE = "field is immutable"


# --- typed access to decoded JSON --------------------------------------------------------------


def _type_error(path: str, value: Any, want: str) -> FieldError:
    return invalid(path, value, f"must be of type {want}")


def _get(obj: Obj, key: str, want: type, want_name: str, path: str, errs: Errs) -> Any:
    """obj[key] if it has the wanted type; None if absent or null; a type error otherwise."""
    value = obj.get(key)
    if value is None:
        return None
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if ok and want is int:
        ok = _INT32_MIN <= value <= _INT32_MAX
    if not ok:
        errs.append(_type_error(path, value, want_name))
        return None
    return value


def _map(obj: Obj, key: str, path: str, errs: Errs) -> Obj | None:
    result: Obj | None = _get(obj, key, dict, "object", path, errs)
    return result


def _list(obj: Obj, key: str, path: str, errs: Errs) -> list[Any] | None:
    result: list[Any] | None = _get(obj, key, list, "array", path, errs)
    return result


def _str(obj: Obj, key: str, path: str, errs: Errs) -> str | None:
    result: str | None = _get(obj, key, str, "string", path, errs)
    return result


def _required_str(obj: Obj, key: str, path: str, errs: Errs) -> str:
    """A string that must be set: "" (and an error) when it is absent, empty or not a string."""
    value = _str(obj, key, path, errs)
    if value == "" or (value is None and obj.get(key) is None):
        errs.append(required(path))
    return value or ""


def _int32(obj: Obj, key: str, path: str, errs: Errs) -> int | None:
    result: int | None = _get(obj, key, int, "int32", path, errs)
    return result


def _items(obj: Obj, key: str, path: str, errs: Errs) -> list[tuple[int, Obj]]:
    """The objects of the list obj[key], with their indexes; other items are type errors."""
    out: list[tuple[int, Obj]] = []
    for i, item in enumerate(_list(obj, key, path, errs) or []):
        if isinstance(item, dict):
            out.append((i, item))
        else:
            errs.append(_type_error(f"{path}[{i}]", item, "object"))
    return out


def _strings(obj: Obj, key: str, path: str, errs: Errs) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for i, item in enumerate(_list(obj, key, path, errs) or []):
        if isinstance(item, str):
            out.append((i, item))
        else:
            errs.append(_type_error(f"{path}[{i}]", item, "string"))
    return out


def _check_bools(obj: Obj, keys: tuple[str, ...], path: str, errs: Errs) -> None:
    for key in keys:
        _get(obj, key, bool, "boolean", f"{path}.{key}", errs)


def _each(messages: list[str], path: str, value: Any) -> Errs:
    """One Invalid error per message of a names.is_* check."""
    return [invalid(path, value, m) for m in messages]


def _too_many(path: str, count: int, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, count, f"must have at most {limit} items")


# --- sloppy IP and CIDR parsing (what Go's net.ParseIP / ParseCIDR accepted) -------------------

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _small_number(text: str, limit: int) -> int | None:
    """A decimal number with any leading zeros (Go's dtoi), if it is at most limit."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(limit)):
        return None
    value = int(text)
    return value if value <= limit else None


def _parse_ipv4_sloppy(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    octets = [_small_number(part, 255) for part in parts]
    if len(parts) != 4 or None in octets:
        return None
    return ipaddress.IPv4Address(bytes(o or 0 for o in octets))


def parse_ip_sloppy(text: str) -> _Addr | None:
    """An IP as Kubernetes' legacy fields accept it: IPv4 octets may have leading zeros, IPv6
    may be non-canonical or IPv4-mapped; no zone."""
    if ":" not in text:
        return _parse_ipv4_sloppy(text)
    if "%" in text:
        return None
    head, _, tail = text.rpartition(":")
    if "." in tail:
        v4 = _parse_ipv4_sloppy(tail)
        if v4 is None:
            return None
        text = f"{head}:{v4}"
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_cidr_sloppy(text: str) -> _Net | None:
    """A CIDR as Kubernetes' legacy fields accept it: the address as parse_ip_sloppy, host bits
    may be set (they are masked off), the prefix length may have leading zeros."""
    addr_text, slash, bits_text = text.partition("/")
    addr = parse_ip_sloppy(addr_text) if slash else None
    if addr is None:
        return None
    bits = _small_number(bits_text, addr.max_prefixlen)
    if bits is None:
        return None
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((addr, bits), strict=False)
    return ipaddress.IPv6Network((addr, bits), strict=False)


def _as_v4(addr: _Addr) -> ipaddress.IPv4Address | None:
    if isinstance(addr, ipaddress.IPv4Address):
        return addr
    return addr.ipv4_mapped


def _contains(net: _Net, addr: _Addr) -> bool:
    """Go's IPNet.Contains: an IPv4-mapped network or address counts as IPv4."""
    net_v4 = _as_v4(net.network_address)
    if net_v4 is not None:
        bits = net.prefixlen - (96 if net.version == 6 else 0)
        addr_v4 = _as_v4(addr)
        return addr_v4 is not None and int(addr_v4) >> (32 - bits) == int(net_v4) >> (32 - bits)
    if not isinstance(addr, ipaddress.IPv6Address) or addr.ipv4_mapped is not None:
        return False
    shift = 128 - net.prefixlen
    return int(addr) >> shift == int(net.network_address) >> shift


def _strict_subset(outer: _Net, inner: _Net) -> bool:
    return _contains(outer, inner.network_address) and outer.prefixlen < inner.prefixlen


def _endpoint_ip(text: str, path: str) -> Errs:
    """ValidateEndpointIP: addresses that make no sense as an endpoint."""
    addr = parse_ip_sloppy(text)
    if addr is None:
        return [invalid(path, text, "must be a valid IP address")]
    addr = _as_v4(addr) or addr
    errs: Errs = []
    if addr.is_unspecified:
        errs.append(invalid(path, text, f"may not be unspecified ({text})"))
    if addr.is_loopback:
        errs.append(invalid(path, text, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if addr in _LINK_LOCAL:
        errs.append(invalid(path, text,
                            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if addr in _LINK_LOCAL_MULTICAST:
        errs.append(invalid(path, text, "may not be in the link-local multicast range "
                                        "(224.0.0.0/24, ff02::/10)"))
    return errs


class _Ranges:
    """A set of networks of both families that `in` can test an address against."""

    def __init__(self, *cidrs: str) -> None:
        self._nets = [ipaddress.ip_network(c) for c in cidrs]

    def __contains__(self, addr: _Addr) -> bool:
        return any(addr.version == n.version and addr in n for n in self._nets)


_LINK_LOCAL = _Ranges("169.254.0.0/16", "fe80::/10")
# Go's IsLinkLocalMulticast: 224.0.0.0/24, and ff02::/16 whatever the flag bits (ff12::, ff32::).
_LINK_LOCAL_MULTICAST = _Ranges("224.0.0.0/24", *(f"ff{f:x}2::/16" for f in range(16)))


# --- shared field checks -----------------------------------------------------------------------


def _label_selector(selector: Obj, path: str, allow_invalid_values: bool = False) -> Errs:
    """metav1 ValidateLabelSelector."""
    errs: Errs = []
    labels = _map(selector, "matchLabels", f"{path}.matchLabels", errs) or {}
    for key in sorted(labels):
        errs += _each(names.is_qualified_name(key), f"{path}.matchLabels", key)
        value = labels[key]
        if not isinstance(value, str):
            errs.append(_type_error(f"{path}.matchLabels[{key}]", value, "string"))
            continue
        errs += _each(names.is_label_value(value), f"{path}.matchLabels", value)
    for i, expr in _items(selector, "matchExpressions", f"{path}.matchExpressions", errs):
        errs += _selector_requirement(expr, f"{path}.matchExpressions[{i}]", allow_invalid_values)
    return errs


def _selector_requirement(expr: Obj, path: str, allow_invalid_values: bool) -> Errs:
    errs: Errs = []
    operator = _str(expr, "operator", f"{path}.operator", errs) or ""
    values = _strings(expr, "values", f"{path}.values", errs)
    has_values = bool(expr.get("values"))
    if operator in ("In", "NotIn"):
        if not has_values:
            errs.append(required(f"{path}.values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if has_values:
            errs.append(forbidden(f"{path}.values", "may not be specified when `operator` is "
                                                    "'Exists' or 'DoesNotExist'"))
    else:
        errs.append(invalid(f"{path}.operator", operator, "not a valid selector operator"))
    key = _str(expr, "key", f"{path}.key", errs) or ""
    errs += _each(names.is_qualified_name(key), f"{path}.key", key)
    if not allow_invalid_values:
        for j, value in values:
            errs += _each(names.is_label_value(value), f"{path}.values[{j}]", value)
    return errs


def _path_segment_name(value: str) -> list[str]:
    """IsValidPathSegmentName: what may be put in one segment of a REST path."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _typed_reference(ref: Obj, path: str) -> Errs:
    """apiGroup, kind and name of a TypedLocalObjectReference (or IngressClass parameters)."""
    errs: Errs = []
    api_group = _str(ref, "apiGroup", f"{path}.apiGroup", errs)
    if api_group is not None:
        errs += _each(names.is_dns1123_subdomain(api_group), f"{path}.apiGroup", api_group)
    for key in ("kind", "name"):
        value = _required_str(ref, key, f"{path}.{key}", errs)
        errs += _each(_path_segment_name(value), f"{path}.{key}", value) if value else []
    return errs


def _immutable(new: Any, old: Any, path: str) -> Errs:
    return [] if new == old else [invalid(path, new, _IMMUTABLE)]


# --- NetworkPolicy -----------------------------------------------------------------------------

_NP_PROTOCOLS = ["TCP", "UDP", "SCTP"]
_POLICY_TYPES = ["Ingress", "Egress"]


@dataclass(frozen=True)
class _PolicyOptions:
    allow_invalid_label_values: bool = False
    known_cidrs: frozenset[str] = frozenset()  # CIDRs of the old object, not revalidated


def validate_network_policy(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errs = []
    spec = _map(new, "spec", "spec", errs) or {}
    return errs + _policy_spec(spec, _policy_options(old))


def _policy_options(old: Obj | None) -> _PolicyOptions:
    """On update, what the old object already had is let through (Kubernetes' ratcheting)."""
    if old is None:
        return _PolicyOptions()
    ignored: Errs = []
    spec = _map(old, "spec", "spec", ignored) or {}
    selector = _map(spec, "podSelector", "", ignored) or {}
    cidrs: set[str] = set()
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for _, rule in _items(spec, direction, "", ignored):
            for _, peer in _items(rule, peers, "", ignored):
                block = _map(peer, "ipBlock", "", ignored) or {}
                cidrs.update(v for _, v in _strings(block, "except", "", ignored))
                cidrs.add(_str(block, "cidr", "", ignored) or "")
    return _PolicyOptions(bool(_label_selector(selector, "")), frozenset(cidrs))


def _policy_spec(spec: Obj, opts: _PolicyOptions) -> Errs:
    errs: Errs = []
    selector = _map(spec, "podSelector", "spec.podSelector", errs)
    if selector is not None:
        errs += _label_selector(selector, "spec.podSelector", opts.allow_invalid_label_values)
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in _items(spec, direction, f"spec.{direction}", errs):
            path = f"spec.{direction}[{i}]"
            for j, port in _items(rule, "ports", f"{path}.ports", errs):
                errs += _policy_port(port, f"{path}.ports[{j}]")
            for j, peer in _items(rule, peers, f"{path}.{peers}", errs):
                errs += _policy_peer(peer, f"{path}.{peers}[{j}]", opts)
    return errs + _policy_types(spec)


def _policy_types(spec: Obj) -> Errs:
    errs: Errs = []
    types = _list(spec, "policyTypes", "spec.policyTypes", errs) or []
    if len(types) > len(_POLICY_TYPES):
        return [*errs, invalid("spec.policyTypes", types,
                               "may not specify more than two policyTypes")]
    for i, value in enumerate(types):
        if value not in _POLICY_TYPES:
            errs.append(not_supported(f"spec.policyTypes[{i}]", value, _POLICY_TYPES))
    return errs


def _policy_port(port: Obj, path: str) -> Errs:
    errs: Errs = []
    protocol = _str(port, "protocol", f"{path}.protocol", errs)
    if protocol is not None and protocol not in _NP_PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, _NP_PROTOCOLS))
    end = _int32(port, "endPort", f"{path}.endPort", errs)
    number = port.get("port")
    if number is None:
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end,
                                "may not be specified when `port` is not specified"))
    elif isinstance(number, str):
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end,
                                "may not be specified when `port` is non-numeric"))
        errs += _each(names.is_port_name(number), f"{path}.port", number)
    elif isinstance(number, int) and not isinstance(number, bool):
        errs += _each(names.is_port_number(number), f"{path}.port", number)
        if end is not None:
            if end < number:
                errs.append(invalid(f"{path}.endPort", end,
                                    "must be greater than or equal to `port`"))
            errs += _each(names.is_port_number(end), f"{path}.endPort", end)
    else:
        errs.append(_type_error(f"{path}.port", number, "int-or-string"))
    return errs


def _policy_peer(peer: Obj, path: str, opts: _PolicyOptions) -> Errs:
    errs: Errs = []
    kinds = 0
    for key in ("podSelector", "namespaceSelector"):
        selector = _map(peer, key, f"{path}.{key}", errs)
        if selector is not None:
            kinds += 1
            errs += _label_selector(selector, f"{path}.{key}", opts.allow_invalid_label_values)
    block = _map(peer, "ipBlock", f"{path}.ipBlock", errs)
    if block is not None:
        kinds += 1
        errs += _ip_block(block, f"{path}.ipBlock", opts.known_cidrs)
    if kinds == 0:
        errs.append(required(path, "must specify a peer"))
    elif kinds > 1 and block is not None:
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _cidr_errors(value: str, path: str, known: frozenset[str]) -> Errs:
    if value in known or parse_cidr_sloppy(value) is not None:
        return []
    return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]


def _ip_block(block: Obj, path: str, known: frozenset[str]) -> Errs:
    errs: Errs = []
    cidr = _required_str(block, "cidr", f"{path}.cidr", errs)
    if not cidr:
        return errs
    errs += _cidr_errors(cidr, f"{path}.cidr", known)
    outer = parse_cidr_sloppy(cidr)
    if outer is None:
        return errs
    for i, text in _strings(block, "except", f"{path}.except", errs):
        errs += _cidr_errors(text, f"{path}.except[{i}]", known)
        inner = parse_cidr_sloppy(text)
        if inner is not None and not _strict_subset(outer, inner):
            errs.append(invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`"))
    return errs


# --- Ingress -----------------------------------------------------------------------------------

_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_BAD_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_BAD_PATH_SUFFIXES = ("/..", "/.")
_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True)
class _IngressOptions:
    """Looser checks an update keeps when the old object already broke them."""

    allow_invalid_secret_name: bool = False
    allow_invalid_wildcard_rule: bool = False
    relaxed_service_names: bool = False


def validate_ingress(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errs = []
    spec = _map(new, "spec", "spec", errs) or {}
    errs += _ingress_spec(spec, _ingress_options(old))
    if old is None:
        errs += _class_annotation_matches(new, spec)
    return errs


def _class_annotation_matches(obj: Obj, spec: Obj) -> Errs:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or _CLASS_ANNOTATION not in annotations:
        return []
    value, class_name = annotations[_CLASS_ANNOTATION], spec.get("ingressClassName")
    if class_name is None or value == class_name:
        return []
    return [invalid(f"annotations.{_CLASS_ANNOTATION}", value,
                    "must match `ingressClassName` when both are specified")]


def _ingress_options(old: Obj | None) -> _IngressOptions:
    if old is None:
        return _IngressOptions()
    ignored: Errs = []
    spec = _map(old, "spec", "", ignored) or {}
    secrets = [_str(tls, "secretName", "", ignored) or "" for _, tls in _items(spec, "tls", "",
                                                                                ignored)]
    bad_wildcard = False
    for _, rule in _items(spec, "rules", "", ignored):
        host = _str(rule, "host", "", ignored) or ""
        if "*" in host and _ingress_rule_value(rule, "", _IngressOptions()):
            bad_wildcard = True
    return _IngressOptions(
        allow_invalid_secret_name=any(s and names.is_dns1123_subdomain(s) for s in secrets),
        allow_invalid_wildcard_rule=bad_wildcard,
        relaxed_service_names=any(not names.is_dns1123_label(n) and names.is_dns1035_label(n)
                                  for n in _service_names(spec)),
    )


def _service_names(spec: Obj) -> list[str]:
    ignored: Errs = []
    backends = [_map(spec, "defaultBackend", "", ignored) or {}]
    for _, rule in _items(spec, "rules", "", ignored):
        http = _map(rule, "http", "", ignored) or {}
        backends += [_map(p, "backend", "", ignored) or {} for _, p in _items(http, "paths", "",
                                                                                ignored)]
    services = [_map(b, "service", "", ignored) or {} for b in backends]
    return [n for n in (_str(s, "name", "", ignored) for s in services) if n]


def _ingress_spec(spec: Obj, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    rules = _items(spec, "rules", "spec.rules", errs)
    backend = _map(spec, "defaultBackend", "spec.defaultBackend", errs)
    if not rules and backend is None:
        errs.append(invalid("spec", spec.get("rules"),
                            "either `defaultBackend` or `rules` must be specified"))
    if backend is not None:
        errs += _ingress_backend(backend, "spec.defaultBackend", opts)
    for i, rule in rules:
        errs += _ingress_rule(rule, f"spec.rules[{i}]", opts)
    for i, tls in _items(spec, "tls", "spec.tls", errs):
        errs += _ingress_tls(tls, f"spec.tls[{i}]", opts)
    class_name = _str(spec, "ingressClassName", "spec.ingressClassName", errs)
    if class_name is not None:
        errs += _each(names.name_is_dns_subdomain(class_name), "spec.ingressClassName",
                      class_name)
    return errs


def _host_errors(host: str, path: str) -> Errs:
    """A TLS host or a rule host: a DNS subdomain, or a wildcard one (`*.example.com`)."""
    if "*" in host:
        return _each(names.is_wildcard_dns1123_subdomain(host), path, host)
    return _each(names.is_dns1123_subdomain(host), path, host)


def _ingress_rule(rule: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    host = _str(rule, "host", f"{path}.host", errs) or ""
    if host and parse_ip_sloppy(host) is not None:
        errs.append(invalid(f"{path}.host", host, "must be a DNS name, not an IP address"))
    if host:
        errs += _host_errors(host, f"{path}.host")
    if "*" not in host or not opts.allow_invalid_wildcard_rule:
        errs += _ingress_rule_value(rule, path, opts)
    return errs


def _ingress_rule_value(rule: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    http = _map(rule, "http", f"{path}.http", errs)
    if http is None:
        return errs
    paths = _items(http, "paths", f"{path}.http.paths", errs)
    if not http.get("paths"):
        errs.append(required(f"{path}.http.paths"))
    for i, item in paths:
        errs += _ingress_path(item, f"{path}.http.paths[{i}]", opts)
    return errs


def _ingress_path(item: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    path_type = _str(item, "pathType", f"{path}.pathType", errs)
    if path_type is None:
        if not errs:
            errs.append(required(f"{path}.pathType", "pathType must be specified"))
        return errs
    value = _str(item, "path", f"{path}.path", errs) or ""
    if path_type in ("Exact", "Prefix"):
        errs += _absolute_path_errors(value, f"{path}.path")
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, _PATH_TYPES))
    backend = _map(item, "backend", f"{path}.backend", errs) or {}
    return errs + _ingress_backend(backend, f"{path}.backend", opts)


def _absolute_path_errors(value: str, path: str) -> Errs:
    """The path of an Exact or Prefix rule: absolute, and no sequence that could be normalized
    into a different path by a proxy."""
    errs: Errs = []
    if not value.startswith("/"):
        errs.append(invalid(path, value, "must be an absolute path"))
    errs += [invalid(path, value, f"must not contain '{seq}'")
             for seq in _BAD_PATH_SEQUENCES if seq in value]
    errs += [invalid(path, value, f"cannot end with '{suffix}'")
             for suffix in _BAD_PATH_SUFFIXES if value.endswith(suffix)]
    return errs


def _ingress_backend(backend: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    resource = _map(backend, "resource", f"{path}.resource", errs)
    service = _map(backend, "service", f"{path}.service", errs)
    if resource is not None and service is not None:
        return [*errs, invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return errs + _typed_reference(resource, f"{path}.resource")
    if service is not None:
        return errs + _service_backend(service, path, opts)
    return [*errs, invalid(path, "", "resource or service backend is required")]


def _service_backend(service: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    name = _required_str(service, "name", f"{path}.service.name", errs)
    if name:
        check = names.is_dns1123_label if opts.relaxed_service_names else names.is_dns1035_label
        errs += _each(check(name), f"{path}.service.name", name)
    port = _map(service, "port", f"{path}.service.port", errs) or {}
    port_name = _str(port, "name", f"{path}.service.port.name", errs) or ""
    number = _int32(port, "number", f"{path}.service.port.number", errs) or 0
    if port_name and number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs += _each(names.is_port_name(port_name), f"{path}.service.port.name", port_name)
    elif number:
        errs += _each(names.is_port_number(number), f"{path}.service.port.number", number)
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _ingress_tls(tls: Obj, path: str, opts: _IngressOptions) -> Errs:
    errs: Errs = []
    for i, host in _strings(tls, "hosts", f"{path}.hosts", errs):
        errs += _host_errors(host, f"{path}.hosts[{i}]")
    secret = _str(tls, "secretName", f"{path}.secretName", errs) or ""
    if secret and not opts.allow_invalid_secret_name:
        errs += _each(names.name_is_dns_subdomain(secret), f"{path}.secretName", secret)
    return errs


def validate_ingress_status(new: Obj, old: Obj | None) -> list[FieldError]:
    """A write to ingresses/status: the load balancer's addresses."""
    errs: Errs = []
    ignored: Errs = []
    known_ips = {ip for _, lb in _load_balancer_ingress(old or {}, ignored)
                 if (ip := _str(lb, "ip", "", ignored))}
    for i, lb in _load_balancer_ingress(new, errs):
        path = f"status.loadBalancer.ingress[{i}]"
        ip = _str(lb, "ip", f"{path}.ip", errs)
        if ip and ip not in known_ips and parse_ip_sloppy(ip) is None:
            errs.append(invalid(f"{path}.ip", ip,
                                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        hostname = _str(lb, "hostname", f"{path}.hostname", errs)
        if hostname:
            errs += _each(names.is_dns1123_subdomain(hostname), f"{path}.hostname", hostname)
            if parse_ip_sloppy(hostname) is not None:
                errs.append(invalid(f"{path}.hostname", hostname,
                                    "must be a DNS name, not an IP address"))
        for j, port in _items(lb, "ports", f"{path}.ports", errs):
            _int32(port, "port", f"{path}.ports[{j}].port", errs)
            _str(port, "protocol", f"{path}.ports[{j}].protocol", errs)
            _str(port, "error", f"{path}.ports[{j}].error", errs)
    return errs


def _load_balancer_ingress(obj: Obj, errs: Errs) -> list[tuple[int, Obj]]:
    status = _map(obj, "status", "status", errs) or {}
    balancer = _map(status, "loadBalancer", "status.loadBalancer", errs) or {}
    return _items(balancer, "ingress", "status.loadBalancer.ingress", errs)


# --- IngressClass ------------------------------------------------------------------------------

_CONTROLLER_MAX = 250
_HTTP_PATH_CHARS = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_SCOPES = ["Cluster", "Namespace"]


def validate_ingress_class(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errs = []
    spec = _map(new, "spec", "spec", errs) or {}
    if old is not None:
        old_spec = old.get("spec")
        old_controller = old_spec.get("controller") if isinstance(old_spec, dict) else None
        errs += _immutable(spec.get("controller"), old_controller, "spec.controller")
    controller = _required_str(spec, "controller", "spec.controller", errs)
    if controller:
        if len(controller.encode()) > _CONTROLLER_MAX:
            errs.append(too_long("spec.controller", "", _CONTROLLER_MAX))
        errs += _domain_prefixed_path(controller, "spec.controller")
    parameters = _map(spec, "parameters", "spec.parameters", errs)
    if parameters is not None:
        errs += _class_parameters(parameters, "spec.parameters")
    return errs


def _domain_prefixed_path(value: str, path: str) -> Errs:
    """IsDomainPrefixedPath: `example.com/some/path`."""
    host, slash, rest = value.partition("/")
    if not (host and slash and rest):
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = _each(names.is_dns1123_subdomain(host), path, host)
    if not re.fullmatch(_HTTP_PATH_CHARS, rest):
        errs.append(invalid(path, rest,
                            f"Invalid path (regex used for validation is '{_HTTP_PATH_CHARS}')"))
    return errs


def _class_parameters(params: Obj, path: str) -> Errs:
    errs = _typed_reference(params, path)
    scope = _str(params, "scope", f"{path}.scope", errs)
    if scope is None:
        return [*errs, required(f"{path}.scope")]
    if scope not in _SCOPES:
        return [*errs, not_supported(f"{path}.scope", scope, _SCOPES)]
    namespace = _str(params, "namespace", f"{path}.namespace", errs)
    if scope == "Namespace":
        if namespace is None:
            errs.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            errs += _each(names.name_is_dns_label(namespace), f"{path}.namespace", namespace)
    elif namespace is not None:
        errs.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errs


# --- EndpointSlice -----------------------------------------------------------------------------

_ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
_SLICE_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_MAX_ENDPOINTS = 1000
_MAX_ADDRESSES = 100
_MAX_PORTS = 20000
_MAX_TOPOLOGY_LABELS = 16
_MAX_HINTS = 8


def validate_endpoint_slice(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errs = []
    address_type = _required_str(new, "addressType", "addressType", errs)
    if address_type and address_type not in _ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    errs += _endpoints(new, address_type)
    errs += _slice_ports(new)
    if old is not None:
        errs += _immutable(new.get("addressType"), old.get("addressType"), "addressType")
    return errs


def _endpoints(obj: Obj, address_type: str) -> Errs:
    errs: Errs = []
    endpoints = obj.get("endpoints")
    if isinstance(endpoints, list) and len(endpoints) > _MAX_ENDPOINTS:
        return [_too_many("endpoints", len(endpoints), _MAX_ENDPOINTS)]
    for i, endpoint in _items(obj, "endpoints", "endpoints", errs):
        errs += _endpoint(endpoint, f"endpoints[{i}]", address_type)
    return errs


def _endpoint(endpoint: Obj, path: str, address_type: str) -> Errs:
    errs: Errs = []
    addresses = _strings(endpoint, "addresses", f"{path}.addresses", errs)
    raw = endpoint.get("addresses")
    count = len(raw) if isinstance(raw, list) else -1
    if count == 0 or raw is None:
        errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif count > _MAX_ADDRESSES:
        errs.append(_too_many(f"{path}.addresses", count, _MAX_ADDRESSES))
    for j, address in addresses:
        errs += _address(address, f"{path}.addresses[{j}]", address_type)
    conditions = _map(endpoint, "conditions", f"{path}.conditions", errs) or {}
    _check_bools(conditions, ("ready", "serving", "terminating"), f"{path}.conditions", errs)
    node_name = _str(endpoint, "nodeName", f"{path}.nodeName", errs)
    if node_name is not None:
        errs += _each(names.name_is_dns_subdomain(node_name), f"{path}.nodeName", node_name)
    _str(endpoint, "zone", f"{path}.zone", errs)
    _map(endpoint, "targetRef", f"{path}.targetRef", errs)
    errs += _deprecated_topology(endpoint, f"{path}.deprecatedTopology")
    hostname = _str(endpoint, "hostname", f"{path}.hostname", errs)
    if hostname is not None:
        errs += _each(names.is_dns1123_label(hostname), f"{path}.hostname", hostname)
    hints = _map(endpoint, "hints", f"{path}.hints", errs)
    if hints is not None:
        errs += _hints(hints, f"{path}.hints")
    return errs


def _address(address: str, path: str, address_type: str) -> Errs:
    """An address checked against the slice's addressType; unknown types are not checked."""
    if address_type == "FQDN":
        return _fqdn_errors(address, path)
    if address_type not in ("IPv4", "IPv6"):
        return []
    parsed = parse_ip_sloppy(address)
    is_v4 = parsed is not None and _as_v4(parsed) is not None
    errs: Errs = []
    if address_type == "IPv4" and not is_v4:
        errs.append(invalid(path, address, "must be a valid IPv4 address"))
    if address_type == "IPv6" and (parsed is None or is_v4):
        errs.append(invalid(path, address, "must be a valid IPv6 address"))
    return errs + _endpoint_ip(address, path)


def _fqdn_errors(name: str, path: str) -> Errs:
    """IsFullyQualifiedDomainName: at least two labels; one trailing dot is allowed."""
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    messages = names.is_dns1123_subdomain(name)
    if messages:
        return [invalid(path, name, ",".join(messages))]
    labels = name.split(".")
    if len(labels) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated "
                                    "by dots")]
    for label in labels:
        messages = names.is_dns1123_label(label)
        if messages:
            return [invalid(path, label, ",".join(messages))]
    return []


def _deprecated_topology(endpoint: Obj, path: str) -> Errs:
    errs: Errs = []
    topology = _map(endpoint, "deprecatedTopology", path, errs) or {}
    if len(topology) > _MAX_TOPOLOGY_LABELS:
        errs.append(_too_many(path, len(topology), _MAX_TOPOLOGY_LABELS))
    for key in sorted(topology):
        errs += _each(names.is_qualified_name(key), path, key)
        value = topology[key]
        if isinstance(value, str):
            errs += _each(names.is_label_value(value), path, value)
        else:
            errs.append(_type_error(f"{path}[{key}]", value, "string"))
    return errs


def _hints(hints: Obj, path: str) -> Errs:
    """forZones names are label values, forNodes names node names; neither repeats."""
    errs: Errs = []
    for key, check in (("forZones", names.is_label_value),
                       ("forNodes", names.name_is_dns_subdomain)):
        raw = hints.get(key)
        if isinstance(raw, list) and len(raw) > _MAX_HINTS:
            errs.append(_too_many(f"{path}.{key}", len(raw), _MAX_HINTS))
            continue
        seen: set[str] = set()
        for i, hint in _items(hints, key, f"{path}.{key}", errs):
            name_path = f"{path}.{key}[{i}].name"
            name = _str(hint, "name", name_path, errs) or ""
            if name in seen:
                errs.append(duplicate(name_path, name))
            seen.add(name)
            errs += _each(check(name), name_path, name)
    return errs


def _slice_ports(obj: Obj) -> Errs:
    errs: Errs = []
    ports = obj.get("ports")
    if isinstance(ports, list) and len(ports) > _MAX_PORTS:
        return [_too_many("ports", len(ports), _MAX_PORTS)]
    seen: set[str] = set()
    for i, port in _items(obj, "ports", "ports", errs):
        path = f"ports[{i}]"
        name = _str(port, "name", f"{path}.name", errs) or ""
        if name:
            errs += _each(names.is_dns1123_label(name), f"{path}.name", name)
        if name in seen:
            errs.append(duplicate(f"{path}.name", name))
        seen.add(name)
        protocol = _str(port, "protocol", f"{path}.protocol", errs)
        if protocol is None:
            errs.append(required(f"{path}.protocol"))
        elif protocol not in _SLICE_PROTOCOLS:
            errs.append(not_supported(f"{path}.protocol", protocol, _SLICE_PROTOCOLS))
        _int32(port, "port", f"{path}.port", errs)
        app_protocol = _str(port, "appProtocol", f"{path}.appProtocol", errs)
        if app_protocol is not None:
            errs += _each(names.is_qualified_name(app_protocol), f"{path}.appProtocol",
                          app_protocol)
    return errs


# --- the tables --------------------------------------------------------------------------------

VALIDATORS: dict[tuple[str, str], Validator] = {
    (NETWORKING, "NetworkPolicy"): validate_network_policy,
    (NETWORKING, "Ingress"): validate_ingress,
    (NETWORKING, "IngressClass"): validate_ingress_class,
    (DISCOVERY, "EndpointSlice"): validate_endpoint_slice,
}

STATUS_VALIDATORS: dict[tuple[str, str], Validator] = {
    (NETWORKING, "Ingress"): validate_ingress_status,
}
