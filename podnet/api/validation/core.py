"""Validation of the core/v1 kinds podnet serves: Namespace, Node, Pod, Service, Secret, Event.

The rules are those of Kubernetes' pkg/apis/core/validation for the fields these kinds carry,
rewritten over decoded JSON. Every validator takes (new, old): `old` is the stored object on
an update, None on a create. Metadata is checked elsewhere (validation.meta); these check the
rest. Validators see defaulted objects but never assume it: any field may be missing or of the
wrong type, and that is reported, never raised.

`VALIDATORS` and `STATUS_VALIDATORS` map (apiVersion, kind) to the validator of a write and of
a status-subresource write.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from podnet.api import names
from podnet.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from podnet.api.validation.meta import (
    FIELD_IMMUTABLE,
    Errors,
    Obj,
    as_dict,
    as_obj,
    child,
    get_bool,
    get_int,
    get_list,
    get_obj,
    get_opt_str,
    get_str,
    get_str_list,
    get_str_map,
    index,
    is_int,
    item_obj,
    key,
    msgs_to_errors,
    too_long,
    type_error,
    validate_finalizer_name,
    validate_labels,
)

Validator = Callable[[Obj, Obj | None], list[FieldError]]

# The node port range of the cluster (kube-apiserver's --service-node-port-range).
NODE_PORT_RANGE: tuple[int, int] = (30000, 32767)

MAX_INT32 = 2**31 - 1
MAX_SECRET_SIZE = 1024 * 1024
NEGATIVE = "must be greater than or equal to 0"
PROTOCOLS = ["SCTP", "TCP", "UDP"]


# -- small shared checks ----------------------------------------------------------------------

def _dns_label(value: str, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_dns1123_label(value))


def _dns_subdomain(value: str, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_dns1123_subdomain(value))


def _qualified_name(value: str, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_qualified_name(value))


def _ip(value: str, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_ip(value))


def _cidr(value: str, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_cidr(value))


def _non_negative(value: int | None, path: str) -> Errors:
    return [invalid(path, value, NEGATIVE)] if value is not None and value < 0 else []


def _enum(value: str, path: str, supported: list[str], *, required_if_empty: bool = True
          ) -> Errors:
    if not value:
        return [required(path)] if required_if_empty else []
    return [] if value in supported else [not_supported(path, value, supported)]


def _port_num(value: int, path: str) -> Errors:
    return msgs_to_errors(path, value, names.is_port_number(value))


def _port_num_or_name(parent: Obj | None, name: str, base: str, errs: Errors) -> None:
    """An IntOrString port: a number 1-65535 or an IANA service name."""
    path = child(base, name)
    value = parent.get(name) if parent else None
    if value is None or is_int(value):
        errs += _port_num(value or 0, path)
    elif isinstance(value, str):
        errs += msgs_to_errors(path, value, names.is_port_name(value))
    else:
        errs.append(type_error(path, value, "int-or-string"))


def _ip_family(ip: str) -> int | None:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None


def _dual_stack(values: list[str], *, cidr: bool = False) -> bool:
    """Exactly one IPv4 and one IPv6 value."""
    versions = set()
    for v in values:
        try:
            versions.add(ipaddress.ip_network(v, strict=False).version if cidr
                         else ipaddress.ip_address(v).version)
        except ValueError:
            return False
    return len(values) == 2 and versions == {4, 6}


def _normalized(value: Any) -> Any:
    """A value with Go's zero values dropped, so comparing two objects is the semantic
    comparison Kubernetes makes (unset, null, "", 0, false, {} and [] are alike)."""
    if isinstance(value, dict):
        out = {k: _normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", 0, False, {}, [])}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def _changed_paths(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            _changed_paths(old.get(k), new.get(k), child(path, k), out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _changed_paths(a, b, index(path, i), out)
    elif old != new:
        out.append(path)


# -- resource quantities ----------------------------------------------------------------------

QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)\Z")
QUANTITY_MSG = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_SUFFIXES = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal | None:
    """The amount of a resource.Quantity ("100m", "1Gi", "2e3", 5), or None if malformed."""
    if is_int(value) or isinstance(value, float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = QUANTITY_RE.match(value)
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2)
    if suffix in _SUFFIXES:
        return number * _SUFFIXES[suffix]
    if re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        return number * Decimal(10) ** int(suffix[1:])
    return None


_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_STANDARD_RESOURCES = _STANDARD_CONTAINER_RESOURCES | {
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "services.nodeports", "services.loadbalancers",
}


def _is_native_resource(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/") or ".kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _is_native_resource(name) and not name.startswith("hugepages-")


def _container_resource_name(name: str, path: str) -> Errors:
    errs = _qualified_name(name, path)
    if errs or "/" in name:
        return errs
    standard = name.startswith("hugepages-") or name in _STANDARD_RESOURCES
    if not standard:
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    if not (name.startswith("hugepages-") or name in _STANDARD_CONTAINER_RESOURCES):
        errs.append(invalid(path, name, "must be a standard resource for containers"))
    return errs


def _quantity(value: Any, path: str, errs: Errors) -> Decimal | None:
    amount = parse_quantity(value)
    if amount is None:
        errs.append(invalid(path, value, QUANTITY_MSG))
    elif amount < 0:
        errs.append(invalid(path, value, NEGATIVE))
        return None
    return amount


def _quantities(parent: Obj | None, name: str, base: str, errs: Errors) -> None:
    """A ResourceList of capacity-like values: any name, non-negative quantities."""
    path = child(base, name)
    for k, v in (get_obj(parent, name, base, errs) or {}).items():
        _quantity(v, key(path, k), errs)


def _validate_resources(res: Obj | None, path: str, errs: Errors) -> None:
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    limits = get_obj(res, "limits", path, errs) or {}
    requests = get_obj(res, "requests", path, errs) or {}
    limit_amounts: dict[str, Decimal] = {}
    for name, value in limits.items():
        p = key(lim_path, name)
        errs += _container_resource_name(name, p)
        amount = _quantity(value, p, errs)
        if amount is not None:
            limit_amounts[name] = amount
    for name, value in requests.items():
        p = key(req_path, name)
        errs += _container_resource_name(name, p)
        amount = _quantity(value, p, errs)
        if amount is None:
            continue
        limit = limit_amounts.get(name)
        if limit is not None:
            if amount != limit and not _overcommit_allowed(name):
                errs.append(invalid(req_path, str(value),
                                    f"must be equal to {name} limit of {limits[name]}"))
            elif amount > limit:
                errs.append(invalid(req_path, str(value),
                                    f"must be less than or equal to {name} limit of "
                                    f"{limits[name]}"))
        elif name not in limits and not _overcommit_allowed(name):
            errs.append(required(lim_path, "Limit must be set for non overcommitable resources"))


# -- pods: containers ---------------------------------------------------------------------------

_ENV_FIELD_PATHS = sorted({
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
})
_CONVERTIBLE_FIELD_PATHS = {
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
    "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
}
_RESOURCE_FIELD_PATHS = sorted({
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu",
    "requests.memory", "requests.ephemeral-storage",
})
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+\Z")


def is_config_map_key(value: str) -> list[str]:
    """Secret and ConfigMap data keys."""
    errs = []
    if len(value) > names.DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {names.DNS1123_SUBDOMAIN_MAX} characters")
    if not _CONFIG_KEY_RE.match(value):
        errs.append("a valid config key must consist of alphanumeric characters, '-', '_' or "
                    "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key_name', regex used for "
                    "validation is '[-._a-zA-Z0-9]+')")
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> ("metadata.labels", "app")."""
    if not field_path.endswith("']"):
        return None
    base, sep, sub = field_path[:-2].partition("['")
    return (base, sub) if sep and base else None


def _validate_field_ref(ref: Obj, path: str, errs: Errors) -> None:
    api_version = get_str(ref, "apiVersion", path, errs)
    field_path = get_str(ref, "fieldPath", path, errs)
    if not api_version:
        errs.append(required(child(path, "apiVersion")))
        return
    if not field_path:
        errs.append(required(child(path, "fieldPath")))
        return
    split = _split_subscript(field_path)
    if api_version != "v1":
        detail = f"unsupported pod version: {api_version}"
    elif split is not None and split[0] not in ("metadata.annotations", "metadata.labels"):
        detail = f"field label does not support subscript: {field_path}"
    elif split is None and field_path not in _CONVERTIBLE_FIELD_PATHS:
        detail = f"field label not supported: {field_path}"
    else:
        detail = ""
    if detail:
        errs.append(invalid(child(path, "fieldPath"), field_path,
                            f"error converting fieldPath: {detail}"))
    elif split is not None:
        subscript = split[1].lower() if split[0] == "metadata.annotations" else split[1]
        errs += _qualified_name(subscript, path)
    elif field_path not in _ENV_FIELD_PATHS:
        errs.append(not_supported(child(path, "fieldPath"), field_path, _ENV_FIELD_PATHS))


def _validate_key_selector(sel: Obj, path: str, errs: Errors) -> None:
    name = get_str(sel, "name", path, errs)
    errs += msgs_to_errors(child(path, "name"), name, names.name_is_dns_subdomain(name))
    k = get_str(sel, "key", path, errs)
    if not k:
        errs.append(required(child(path, "key")))
    else:
        errs += msgs_to_errors(child(path, "key"), k, is_config_map_key(k))


def _validate_value_from(env: Obj, path: str, errs: Errors) -> None:
    src = get_obj(env, "valueFrom", path, errs)
    if src is None:
        return
    vpath = child(path, "valueFrom")
    sources = 0
    ref = get_obj(src, "fieldRef", vpath, errs)
    if ref is not None:
        sources += 1
        _validate_field_ref(ref, child(vpath, "fieldRef"), errs)
    ref = get_obj(src, "resourceFieldRef", vpath, errs)
    if ref is not None:
        sources += 1
        rpath = child(vpath, "resourceFieldRef")
        resource = get_str(ref, "resource", rpath, errs)
        if not resource:
            errs.append(required(child(rpath, "resource")))
        elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(
                ("requests.hugepages-", "limits.hugepages-")):
            errs.append(not_supported(child(rpath, "resource"), resource, _RESOURCE_FIELD_PATHS))
    for name in ("configMapKeyRef", "secretKeyRef"):
        sel = get_obj(src, name, vpath, errs)
        if sel is not None:
            sources += 1
            _validate_key_selector(sel, child(vpath, name), errs)
    if sources == 0:
        errs.append(invalid(vpath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                            "`configMapKeyRef` or `secretKeyRef`"))
    elif get_str(env, "value", path, []):
        errs.append(invalid(vpath, "", "may not be specified when `value` is not empty"))
    elif sources > 1:
        errs.append(invalid(vpath, "", "may not have more than one field specified at a time"))


def _validate_env(ctr: Obj, path: str, errs: Errors) -> None:
    env_path = child(path, "env")
    for i, item in enumerate(get_list(ctr, "env", path, errs)):
        p = index(env_path, i)
        env = item_obj(item, p, errs)
        if env is None:
            continue
        name = get_str(env, "name", p, errs)
        if not name:
            errs.append(required(child(p, "name")))
        else:
            errs += msgs_to_errors(child(p, "name"), name, names.is_env_var_name(name))
        get_str(env, "value", p, errs)
        _validate_value_from(env, p, errs)
    from_path = child(path, "envFrom")
    for i, item in enumerate(get_list(ctr, "envFrom", path, errs)):
        p = index(from_path, i)
        src = item_obj(item, p, errs)
        if src is None:
            continue
        prefix = get_str(src, "prefix", p, errs)
        if prefix:
            errs += msgs_to_errors(child(p, "prefix"), prefix, names.is_env_var_name(prefix))
        sources = 0
        for field in ("configMapRef", "secretRef"):
            ref = get_obj(src, field, p, errs)
            if ref is None:
                continue
            sources += 1
            rp = child(p, field)
            name = get_str(ref, "name", rp, errs)
            if not name:
                errs.append(required(child(rp, "name")))
            else:
                errs += msgs_to_errors(child(rp, "name"), name,
                                       names.name_is_dns_subdomain(name, True))
        if sources == 0:
            errs.append(invalid(from_path, "", "must specify one of: `configMapRef` or "
                                "`secretRef`"))
        elif sources > 1:
            errs.append(invalid(from_path, "", "may not have more than one field specified at "
                                "a time"))


def _validate_container_ports(ctr: Obj, path: str, errs: Errors) -> None:
    ports_path = child(path, "ports")
    seen: set[str] = set()
    for i, item in enumerate(get_list(ctr, "ports", path, errs)):
        p = index(ports_path, i)
        port = item_obj(item, p, errs)
        if port is None:
            continue
        name = get_str(port, "name", p, errs)
        if name:
            msgs = names.is_port_name(name)
            if msgs:
                errs += msgs_to_errors(child(p, "name"), name, msgs)
            elif name in seen:
                errs.append(duplicate(child(p, "name"), name))
            else:
                seen.add(name)
        container_port = get_int(port, "containerPort", p, errs)
        if not container_port:
            errs.append(required(child(p, "containerPort")))
        else:
            errs += _port_num(container_port, child(p, "containerPort"))
        host_port = get_int(port, "hostPort", p, errs)
        if host_port:
            errs += _port_num(host_port, child(p, "hostPort"))
        errs += _enum(get_str(port, "protocol", p, errs), child(p, "protocol"), PROTOCOLS)
        host_ip = get_str(port, "hostIP", p, errs)
        if host_ip:
            errs += _ip(host_ip, child(p, "hostIP"))


def _host_port_conflicts(ctrs: list[tuple[Obj, str]], errs: Errors) -> None:
    seen: set[str] = set()
    for ctr, path in ctrs:
        for i, port in enumerate(_as_list(ctr.get("ports"))):
            if not isinstance(port, dict) or not is_int(port.get("hostPort")):
                continue
            if not port["hostPort"]:
                continue
            k = f"{port.get('protocol', '')}/{port.get('hostIP', '')}/{port['hostPort']}"
            if k in seen:
                errs.append(duplicate(child(index(child(path, "ports"), i), "hostPort"), k))
            seen.add(k)


_HEADER_RE = re.compile(r"^[-A-Za-z0-9]+\Z")


def _validate_handler(handler: Obj, path: str, grace: int | None, kinds: tuple[str, ...],
                      errs: Errors) -> None:
    """A probe or lifecycle handler: exactly one of `kinds` must be set."""
    count = 0
    for kind in kinds:
        action = get_obj(handler, kind, path, errs)
        if action is None:
            continue
        hpath = child(path, kind)
        if count:
            errs.append(forbidden(hpath, "may not specify more than 1 handler type"))
            continue
        count += 1
        if kind == "exec":
            if not get_str_list(action, "command", hpath, errs):
                errs.append(required(child(hpath, "command")))
        elif kind == "httpGet":
            if not get_str(action, "path", hpath, errs):
                errs.append(required(child(hpath, "path")))
            _port_num_or_name(action, "port", hpath, errs)
            scheme = get_str(action, "scheme", hpath, errs)
            if scheme not in ("HTTP", "HTTPS"):
                errs.append(not_supported(child(hpath, "scheme"), scheme, ["HTTP", "HTTPS"]))
            for j, item in enumerate(get_list(action, "httpHeaders", hpath, errs)):
                header = item_obj(item, index(child(hpath, "httpHeaders"), j), errs) or {}
                hname = get_str(header, "name", index(child(hpath, "httpHeaders"), j), errs)
                if not _HEADER_RE.match(hname):
                    errs.append(invalid(child(hpath, "httpHeaders"), hname,
                                        "a valid HTTP header must consist of alphanumeric "
                                        "characters or '-' (e.g. 'X-Header-Name', regex used "
                                        "for validation is '[-A-Za-z0-9]+')"))
        elif kind in ("tcpSocket", "grpc"):
            _port_num_or_name(action, "port", hpath, errs)
        elif kind == "sleep":
            seconds = get_int(action, "seconds", hpath, errs) or 0
            if grace is not None and not 0 <= seconds <= grace:
                errs.append(invalid(hpath, seconds, "must be non-negative and less than "
                                    f"terminationGracePeriodSeconds ({grace})"))
    if count == 0:
        errs.append(required(path, "must specify a handler type"))


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def _validate_probe(ctr: Obj, name: str, path: str, grace: int | None, errs: Errors) -> None:
    probe = get_obj(ctr, name, path, errs)
    if probe is None:
        return
    ppath = child(path, name)
    _validate_handler(probe, ppath, grace, _PROBE_HANDLERS, errs)
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        errs += _non_negative(get_int(probe, field, ppath, errs), child(ppath, field))
    tgps = get_int(probe, "terminationGracePeriodSeconds", ppath, errs)
    if name == "readinessProbe":
        if tgps is not None:
            errs.append(invalid(child(ppath, "terminationGracePeriodSeconds"), tgps,
                                "must not be set for readinessProbes"))
    else:
        if tgps is not None and tgps <= 0:
            errs.append(invalid(child(ppath, "terminationGracePeriodSeconds"), tgps,
                                "must be greater than 0"))
        success = probe.get("successThreshold")
        if is_int(success) and success != 1:
            errs.append(invalid(child(ppath, "successThreshold"), success, "must be 1"))


def _validate_lifecycle(ctr: Obj, path: str, grace: int | None, errs: Errors) -> None:
    lifecycle = get_obj(ctr, "lifecycle", path, errs)
    if lifecycle is None:
        return
    lpath = child(path, "lifecycle")
    for hook in ("postStart", "preStop"):
        handler = get_obj(lifecycle, hook, lpath, errs)
        if handler is not None:
            _validate_handler(handler, child(lpath, hook), grace, _LIFECYCLE_HANDLERS, errs)


def _validate_volume_mounts(ctr: Obj, path: str, volumes: set[str], errs: Errors) -> None:
    mpath = child(path, "volumeMounts")
    mount_points: set[str] = set()
    for i, item in enumerate(get_list(ctr, "volumeMounts", path, errs)):
        p = index(mpath, i)
        mount = item_obj(item, p, errs)
        if mount is None:
            continue
        name = get_str(mount, "name", p, errs)
        if not name:
            errs.append(required(child(p, "name")))
        if name not in volumes:
            errs.append(FieldError("FieldValueNotFound", child(p, "name"), name))
        mount_path = get_str(mount, "mountPath", p, errs)
        if not mount_path:
            errs.append(required(child(p, "mountPath")))
        if mount_path in mount_points:
            errs.append(invalid(child(p, "mountPath"), mount_path, "must be unique"))
        mount_points.add(mount_path)
        for field in ("subPath", "subPathExpr"):
            sub = get_str(mount, field, p, errs)
            if sub.startswith("/"):
                errs.append(invalid(child(p, field), sub, "must be a relative path"))
            if ".." in sub.split("/"):
                errs.append(invalid(child(p, field), sub, "must not contain '..'"))


def _validate_container_security(ctr: Obj, path: str, errs: Errors) -> None:
    sc = get_obj(ctr, "securityContext", path, errs)
    if sc is None:
        return
    spath = child(path, "securityContext")
    for field in ("runAsUser", "runAsGroup"):
        value = get_int(sc, field, spath, errs)
        if value is not None and not 0 <= value <= MAX_INT32:
            errs.append(invalid(child(spath, field), value,
                                f"must be between 0 and {MAX_INT32}, inclusive"))
    privileged = get_bool(sc, "privileged", spath, errs)
    escalation = get_bool(sc, "allowPrivilegeEscalation", spath, errs)
    if escalation is False and privileged:
        errs.append(invalid(spath, sc, "cannot set `allowPrivilegeEscalation` to false and "
                            "`privileged` to true"))
    proc = get_opt_str(sc, "procMount", spath, errs)
    if proc is not None and proc not in ("Default", "Unmasked"):
        errs.append(not_supported(child(spath, "procMount"), proc, ["Default", "Unmasked"]))


def _validate_container_common(ctr: Obj, path: str, volumes: set[str], errs: Errors) -> str:
    """What every kind of container must satisfy; returns its name."""
    name = get_str(ctr, "name", path, errs)
    if not name:
        errs.append(required(child(path, "name")))
    else:
        errs += _dns_label(name, child(path, "name"))
    image = get_str(ctr, "image", path, errs)
    if not image:
        errs.append(required(child(path, "image")))
    elif image != image.strip():
        errs.append(invalid(child(path, "image"), image,
                            "must not have leading or trailing whitespace"))
    errs += _enum(get_str(ctr, "terminationMessagePolicy", path, errs),
                  child(path, "terminationMessagePolicy"), ["File", "FallbackToLogsOnError"])
    get_str_list(ctr, "command", path, errs)
    get_str_list(ctr, "args", path, errs)
    _validate_container_ports(ctr, path, errs)
    _validate_env(ctr, path, errs)
    _validate_volume_mounts(ctr, path, volumes, errs)
    errs += _enum(get_str(ctr, "imagePullPolicy", path, errs), child(path, "imagePullPolicy"),
                  ["Always", "IfNotPresent", "Never"])
    _validate_resources(get_obj(ctr, "resources", path, errs), child(path, "resources"), errs)
    _validate_container_security(ctr, path, errs)
    return name


def _containers(spec: Obj, field: str, errs: Errors) -> list[tuple[Obj, str]]:
    base = child("spec", field)
    out = []
    for i, item in enumerate(get_list(spec, field, "spec", errs)):
        ctr = item_obj(item, index(base, i), errs)
        if ctr is not None:
            out.append((ctr, index(base, i)))
    return out


def _validate_containers(spec: Obj, volumes: set[str], grace: int | None, errs: Errors) -> None:
    containers = _containers(spec, "containers", errs)
    raw = spec.get("containers")
    if not raw and (raw is None or isinstance(raw, list)):
        errs.append(required("spec.containers"))
    seen: set[str] = set()
    for ctr, path in containers:
        name = _validate_container_common(ctr, path, volumes, errs)
        if name in seen:
            errs.append(duplicate(child(path, "name"), name))
        seen.add(name)
        _validate_lifecycle(ctr, path, grace, errs)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            _validate_probe(ctr, probe, path, grace, errs)
        if ctr.get("restartPolicy") is not None:
            errs.append(forbidden(child(path, "restartPolicy"),
                                  "may not be set for non-init containers"))
    _host_port_conflicts(containers, errs)

    for ctr, path in _containers(spec, "initContainers", errs):
        name = _validate_container_common(ctr, path, volumes, errs)
        policy = get_opt_str(ctr, "restartPolicy", path, errs)
        sidecar = policy == "Always"
        if policy is not None and not sidecar:
            errs.append(not_supported(child(path, "restartPolicy"), policy, ["Always"]))
        if name in seen:
            errs.append(duplicate(child(path, "name"), name))
        elif name:
            seen.add(name)
        _host_port_conflicts([(ctr, path)], errs)
        if sidecar:
            _validate_lifecycle(ctr, path, grace, errs)
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                _validate_probe(ctr, probe, path, grace, errs)
        else:
            for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(field) is not None:
                    errs.append(forbidden(child(path, field), "may not be set for init "
                                          "containers without restartPolicy=Always"))


# -- pods: the rest of the spec ---------------------------------------------------------------

_VOLUME_SOURCES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image",
)
# The field each volume source must name, when it has one.
_VOLUME_REQUIRED = {"secret": "secretName", "configMap": "name", "hostPath": "path",
                    "persistentVolumeClaim": "claimName", "nfs": "server", "csi": "driver"}


def _validate_volumes(spec: Obj, errs: Errors) -> set[str]:
    base = "spec.volumes"
    valid: set[str] = set()
    for i, item in enumerate(get_list(spec, "volumes", "spec", errs)):
        p = index(base, i)
        vol = item_obj(item, p, errs)
        if vol is None:
            continue
        vol_errs: Errors = []
        name = get_str(vol, "name", p, errs)
        kinds = 0
        for source in _VOLUME_SOURCES:
            src = get_obj(vol, source, p, vol_errs)
            if src is None:
                continue
            if kinds:
                vol_errs.append(forbidden(child(p, source),
                                          "may not specify more than 1 volume type"))
                continue
            kinds += 1
            need = _VOLUME_REQUIRED.get(source)
            if need and not get_str(src, need, child(p, source), vol_errs):
                vol_errs.append(required(child(child(p, source), need)))
        if kinds == 0:
            vol_errs.append(required(p, "must specify a volume type"))
        if not name:
            vol_errs.append(required(child(p, "name")))
        else:
            vol_errs += _dns_label(name, child(p, "name"))
        if name in valid:
            vol_errs.append(duplicate(child(p, "name"), name))
        if vol_errs:
            errs += vol_errs
        else:
            valid.add(name)
    return valid


def _validate_dns(spec: Obj, errs: Errors) -> None:
    policy = get_str(spec, "dnsPolicy", "spec", errs)
    errs += _enum(policy, "spec.dnsPolicy", ["ClusterFirstWithHostNet", "ClusterFirst", "Default",
                                             "None"])
    config = get_obj(spec, "dnsConfig", "spec", errs)
    path = "spec.dnsConfig"
    nameservers = get_str_list(config, "nameservers", path, errs)
    if policy == "None":
        if config is None:
            errs.append(required(path, "must provide `dnsConfig` when `dnsPolicy` is None"))
            return
        if not nameservers:
            errs.append(required(child(path, "nameservers"), "must provide at least one DNS "
                                 "nameserver when `dnsPolicy` is None"))
            return
    if config is None:
        return
    if len(nameservers) > 3:
        errs.append(invalid(child(path, "nameservers"), nameservers,
                            "must not have more than 3 nameservers"))
    for i, ns in enumerate(nameservers):
        errs += _ip(ns, index(child(path, "nameservers"), i))
    searches = get_str_list(config, "searches", path, errs)
    if len(searches) > 32:
        errs.append(invalid(child(path, "searches"), searches,
                            "must not have more than 32 search paths"))
    if len(" ".join(searches)) > 2048:
        errs.append(invalid(child(path, "searches"), searches, "must not have more than 2048 "
                            "characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        if search != ".":
            errs += _dns_subdomain(search.removesuffix("."), index(child(path, "searches"), i))
    for i, item in enumerate(get_list(config, "options", path, errs)):
        p = index(child(path, "options"), i)
        option = item_obj(item, p, errs)
        if option is not None and not get_str(option, "name", p, errs):
            errs.append(required(p, "must not be empty"))


def validate_tolerations(tolerations: list[Any], path: str, errs: Errors) -> None:
    for i, item in enumerate(tolerations):
        p = index(path, i)
        tol = item_obj(item, p, errs)
        if tol is None:
            continue
        k = get_str(tol, "key", p, errs)
        op = get_str(tol, "operator", p, errs)
        value = get_str(tol, "value", p, errs)
        effect = get_str(tol, "effect", p, errs)
        seconds = get_int(tol, "tolerationSeconds", p, errs)
        if k:
            errs += _qualified_name(k, child(p, "key"))
        if not k and op != "Exists":
            errs.append(invalid(child(p, "operator"), op, "operator must be Exists when `key` is "
                                'empty, which means "match all values and all keys"'))
        if seconds is not None and effect != "NoExecute":
            errs.append(invalid(child(p, "effect"), effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = names.is_label_value(value)
            if msgs:
                errs.append(invalid(child(p, "operator"), value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(invalid(child(p, "operator"), value,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(child(p, "operator"), op, ["Equal", "Exists"]))
        if effect:
            errs += _taint_effect(effect, child(p, "effect"))


def _taint_effect(effect: str, path: str) -> Errors:
    return _enum(effect, path, ["NoSchedule", "PreferNoSchedule", "NoExecute"])


def _validate_pod_security(spec: Obj, errs: Errors) -> None:
    sc = get_obj(spec, "securityContext", "spec", errs)
    if sc is None:
        return
    path = "spec.securityContext"
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        value = get_int(sc, field, path, errs)
        if value is not None and not 0 <= value <= MAX_INT32:
            errs.append(invalid(child(path, field), value,
                                f"must be between 0 and {MAX_INT32}, inclusive"))
    seen: set[str] = set()
    for i, item in enumerate(get_list(sc, "sysctls", path, errs)):
        p = index(child(path, "sysctls"), i)
        sysctl = item_obj(item, p, errs)
        if sysctl is None:
            continue
        name = get_str(sysctl, "name", p, errs)
        get_str(sysctl, "value", p, errs)
        segment = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
        pattern = f"({segment}[\\./])*{segment}"
        if not name:
            errs.append(required(child(p, "name")))
        elif len(name) > 253 or not re.fullmatch(pattern, name):
            errs.append(invalid(child(p, "name"), name,
                                f"must have at most 253 characters and match regex ^{pattern}$"))
        elif name in seen:
            errs.append(duplicate(child(p, "name"), name))
        seen.add(name)


def _validate_host_network(spec: Obj, errs: Errors) -> None:
    """With hostNetwork a pod's container ports are host ports: hostPort must match."""
    if spec.get("hostNetwork") is not True:
        return
    for ctr, path in _containers(spec, "containers", []):
        for i, port in enumerate(_as_list(ctr.get("ports"))):
            if not isinstance(port, dict):
                continue
            hp, cp = port.get("hostPort", 0), port.get("containerPort", 0)
            if hp != cp:
                errs.append(invalid(child(index(child(path, "ports"), i), "hostPort"), hp,
                                    "must match `containerPort` when `hostNetwork` is true"))


def _validate_topology_spread(spec: Obj, errs: Errors) -> None:
    path = "spec.topologySpreadConstraints"
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(get_list(spec, "topologySpreadConstraints", "spec", errs)):
        p = index(path, i)
        tsc = item_obj(item, p, errs)
        if tsc is None:
            continue
        skew = get_int(tsc, "maxSkew", p, errs) or 0
        if skew <= 0:
            errs.append(invalid(child(p, "maxSkew"), skew, "must be greater than zero"))
        topology_key = get_str(tsc, "topologyKey", p, errs)
        if not topology_key:
            errs.append(required(child(p, "topologyKey"), "can not be empty"))
        action = get_str(tsc, "whenUnsatisfiable", p, errs)
        if action not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(not_supported(child(p, "whenUnsatisfiable"), action,
                                      ["DoNotSchedule", "ScheduleAnyway"]))
        if (topology_key, action) in seen:
            errs.append(duplicate(child(p, "{topologyKey, whenUnsatisfiable}"),
                                  f"{{{topology_key}, {action}}}"))
        seen.add((topology_key, action))


def _validate_optional_names(spec: Obj, errs: Errors) -> None:
    for field, check in (("serviceAccountName", names.name_is_dns_subdomain),
                         ("nodeName", names.name_is_dns_subdomain),
                         ("priorityClassName", names.name_is_dns_subdomain),
                         ("schedulerName", None),
                         ("hostname", names.name_is_dns_label),
                         ("subdomain", names.name_is_dns_label)):
        value = get_str(spec, field, "spec", errs)
        if value and check is not None:
            errs += msgs_to_errors(child("spec", field), value, check(value, False))
    runtime_class = get_opt_str(spec, "runtimeClassName", "spec", errs)
    if runtime_class is not None:
        errs += _dns_subdomain(runtime_class, "spec.runtimeClassName")


def _validate_pod_spec(spec: Obj, errs: Errors) -> None:
    grace = get_int(spec, "terminationGracePeriodSeconds", "spec", errs)
    if spec.get("terminationGracePeriodSeconds") is None:
        errs.append(required("spec.terminationGracePeriodSeconds"))
    errs += _non_negative(grace, "spec.terminationGracePeriodSeconds")
    volumes = _validate_volumes(spec, errs)
    _validate_containers(spec, volumes, grace, errs)
    _validate_host_network(spec, errs)
    errs += _enum(get_str(spec, "restartPolicy", "spec", errs), "spec.restartPolicy",
                  ["Always", "OnFailure", "Never"])
    _validate_dns(spec, errs)
    errs += validate_labels(get_str_map(spec, "nodeSelector", "spec", errs), "spec.nodeSelector")
    _validate_pod_security(spec, errs)
    for i, item in enumerate(get_list(spec, "imagePullSecrets", "spec", errs)):
        ref = item_obj(item, index("spec.imagePullSecrets", i), errs)
        if ref is not None and set(ref) - {"name"}:
            errs.append(invalid(index("spec.imagePullSecrets", i), ref, "only name may be set"))
    for i, item in enumerate(get_list(spec, "readinessGates", "spec", errs)):
        p = index("spec.readinessGates", i)
        gate = item_obj(item, p, errs)
        if gate is not None:
            errs += _qualified_name(get_str(gate, "conditionType", p, errs),
                                    child(p, "conditionType"))
    gates: set[str] = set()
    for i, item in enumerate(get_list(spec, "schedulingGates", "spec", errs)):
        p = index("spec.schedulingGates", i)
        gate = item_obj(item, p, errs)
        if gate is None:
            continue
        name = get_str(gate, "name", p, errs)
        errs += _qualified_name(name, p)
        if name in gates:
            errs.append(duplicate(p, name))
        gates.add(name)
    _validate_topology_spread(spec, errs)
    _validate_optional_names(spec, errs)
    deadline = get_int(spec, "activeDeadlineSeconds", "spec", errs)
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid("spec.activeDeadlineSeconds", deadline,
                            f"must be between 1 and {MAX_INT32}, inclusive"))
    validate_tolerations(get_list(spec, "tolerations", "spec", errs), "spec.tolerations", errs)
    for i, item in enumerate(get_list(spec, "hostAliases", "spec", errs)):
        p = index("spec.hostAliases", i)
        alias = item_obj(item, p, errs)
        if alias is None:
            continue
        errs += _ip(get_str(alias, "ip", p, errs), child(p, "ip"))
        for j, host in enumerate(get_str_list(alias, "hostnames", p, errs)):
            errs += _dns_subdomain(host, index(child(p, "hostnames"), j))
    preemption = get_opt_str(spec, "preemptionPolicy", "spec", errs)
    if preemption is not None:
        errs += _enum(preemption, "spec.preemptionPolicy", ["PreemptLowerPriority", "Never"])
    os_ = get_obj(spec, "os", "spec", errs)
    if os_ is not None:
        os_name = get_str(os_, "name", "spec.os", errs)
        if not os_name:
            errs.append(required("spec.os.name", "cannot be empty"))
        elif os_name not in ("linux", "windows"):
            errs.append(not_supported("spec.os", os_name, ["linux", "windows"]))
    for field in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace",
                  "enableServiceLinks", "automountServiceAccountToken"):
        get_bool(spec, field, "spec", errs)


def _spec(obj: Obj, errs: Errors) -> Obj:
    return as_obj(obj.get("spec"), "spec", errs) or {}


def validate_pod(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    spec = _spec(new, errs)
    _validate_pod_spec(spec, errs)
    if old is None:
        if spec.get("ephemeralContainers"):
            errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if spec.get("nodeName") and spec.get("schedulingGates"):
            errs.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates "
                                  "have been cleared"))
    else:
        errs += _validate_pod_update(spec, as_dict(old.get("spec")))
    return errs


# -- pod updates --------------------------------------------------------------------------------

UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _list_of_dicts(spec: Obj, field: str) -> list[Obj]:
    return [v for v in _as_list(spec.get(field)) if isinstance(v, dict)]


def _only_added_tolerations(new: list[Any], old: list[Any]) -> Errors:
    for tol in old:
        if not isinstance(tol, dict):
            continue
        found = False
        for candidate in new:
            if isinstance(candidate, dict):
                a = {k: v for k, v in tol.items() if k != "tolerationSeconds"}
                b = {k: v for k, v in candidate.items() if k != "tolerationSeconds"}
                if _normalized(a) == _normalized(b):
                    found = True
                    break
        if not found:
            return [forbidden("spec.tolerations",
                              "existing toleration can not be modified except its "
                              "tolerationSeconds")]
    return []


def _validate_pod_update(spec: Obj, old_spec: Obj) -> Errors:
    errs: Errors = []
    for field in ("containers", "initContainers"):
        if len(_as_list(spec.get(field))) != len(_as_list(old_spec.get(field))):
            return [*errs, forbidden(child("spec", field),
                                     "pod updates may not add or remove containers")]

    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old_spec.get(
        "activeDeadlineSeconds")
    if is_int(deadline):
        if not 0 <= deadline <= MAX_INT32:
            return [*errs, invalid("spec.activeDeadlineSeconds", deadline,
                                   f"must be between 0 and {MAX_INT32}, inclusive")]
        if is_int(old_deadline) and old_deadline < deadline:
            return [*errs, invalid("spec.activeDeadlineSeconds", deadline,
                                   "must be less than or equal to previous value")]
    elif deadline is None and old_deadline is not None:
        errs.append(invalid("spec.activeDeadlineSeconds", None,
                            "must not update from a positive integer to nil value"))

    errs += _only_added_tolerations(_as_list(spec.get("tolerations")),
                                    _as_list(old_spec.get("tolerations")))

    old_gates = {g.get("name") for g in _list_of_dicts(old_spec, "schedulingGates")}
    for i, gate in enumerate(_list_of_dicts(spec, "schedulingGates")):
        if gate.get("name") not in old_gates:
            errs.append(forbidden(child(index("spec.schedulingGates", i), "name"),
                                  "only deletion is allowed, but found new scheduling gate "
                                  f"'{gate.get('name')}'"))

    munged = copy.deepcopy(spec)
    for field in ("containers", "initContainers"):
        for ctr, old_ctr in zip(_list_of_dicts(munged, field), _list_of_dicts(old_spec, field),
                                strict=False):
            ctr["image"] = old_ctr.get("image")
    for field in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(field, None)
        if field in old_spec:
            munged[field] = old_spec[field]
    old_grace, grace = old_spec.get("terminationGracePeriodSeconds"), munged.get(
        "terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if old_spec.get("schedulingGates"):
        errs += _gated_node_selector(munged, old_spec)
    if _normalized(munged) != _normalized(old_spec):
        changed: list[str] = []
        _changed_paths(_normalized(old_spec), _normalized(munged), "spec", changed)
        errs.append(forbidden("spec", "pod updates may not change fields other than "
                              f"{UPDATABLE_POD_FIELDS}\n  changed: {', '.join(changed)}"))
    return errs


def _gated_node_selector(munged: Obj, old_spec: Obj) -> Errors:
    """A pod still waiting on scheduling gates may gain node selector terms, never lose them."""
    new_sel, old_sel = as_dict(munged.get("nodeSelector")), as_dict(old_spec.get("nodeSelector"))
    munged.pop("nodeSelector", None)
    if "nodeSelector" in old_spec:
        munged["nodeSelector"] = old_spec["nodeSelector"]
    if any(k not in new_sel or new_sel[k] != v for k, v in old_sel.items()):
        return [invalid("spec.nodeSelector", new_sel, "only additions to spec.nodeSelector are "
                        "allowed (no mutations or deletions)")]
    return []


# -- pod status ----------------------------------------------------------------------------------

_CONDITION_STATUSES = ["True", "False", "Unknown"]


def _validate_conditions(status: Obj, path: str, system: set[str], errs: Errors) -> None:
    for i, item in enumerate(get_list(status, "conditions", path, errs)):
        p = index(child(path, "conditions"), i)
        cond = item_obj(item, p, errs)
        if cond is None:
            continue
        ctype = get_str(cond, "type", p, errs)
        if not ctype:
            errs.append(required(child(p, "type")))
        elif ctype not in system:
            errs += _qualified_name(ctype, child(p, "type"))
        errs += _enum(get_str(cond, "status", p, errs), child(p, "status"), _CONDITION_STATUSES)


def _validate_ip_list(status: Obj, single: str, plural: str, errs: Errors) -> None:
    """status.podIP(s) / hostIP(s): valid IPs, at most one per family, the first is the
    singular field."""
    path = child("status", plural)
    first = get_str(status, single, "status", errs)
    if first:
        errs += _ip(first, child("status", single))
    ips: list[str] = []
    for i, item in enumerate(get_list(status, plural, "status", errs)):
        entry = item_obj(item, index(path, i), errs) or {}
        ip = get_str(entry, "ip", index(path, i), errs)
        errs += _ip(ip, index(path, i))
        ips.append(ip)
    if ips and ips[0] != first:
        errs.append(invalid(child(index(path, 0), "ip"), ips[0], f"must be equal to `{single}`"))
    if len(ips) > 1:
        if not _dual_stack(ips):
            errs.append(invalid(path, [{"ip": ip} for ip in ips],
                                "may specify no more than one IP for each IP family"))
        for i, ip in enumerate(ips):
            if ip in ips[:i]:
                errs.append(duplicate(index(path, i), {"ip": ip}))


def validate_pod_status(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    status = as_obj(new.get("status"), "status", errs) or {}
    _validate_conditions(status, "status", {"PodScheduled", "Ready", "Initialized"}, errs)
    errs += _enum(get_str(status, "phase", "status", errs), "status.phase",
                  ["Pending", "Running", "Succeeded", "Failed", "Unknown"],
                  required_if_empty=False)
    _validate_ip_list(status, "podIP", "podIPs", errs)
    _validate_ip_list(status, "hostIP", "hostIPs", errs)
    nominated = get_str(status, "nominatedNodeName", "status", errs)
    if nominated:
        errs += _dns_subdomain(nominated, "status.nominatedNodeName")
    if old is not None:
        spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        old_status = as_dict(old.get("status"))
        if spec.get("nodeName", "") != old_spec.get("nodeName", ""):
            errs.append(forbidden("status.nodeName", "may not be changed directly"))
        qos, old_qos = status.get("qosClass"), old_status.get("qosClass")
        if qos and old_qos and qos != old_qos:  # an agent that omits it keeps the old one
            errs.append(invalid("status.qosClass", status.get("qosClass"), FIELD_IMMUTABLE))
    return errs


# -- services ---------------------------------------------------------------------------------

_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _externally_accessible(stype: str, spec: Obj) -> bool:
    return stype in ("LoadBalancer", "NodePort") or (stype == "ClusterIP"
                                                      and bool(spec.get("externalIPs")))


def _needs_health_check(stype: str, spec: Obj) -> bool:
    return stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _is_headless(cluster_ips: list[str]) -> bool:
    return cluster_ips == ["None"]


def _validate_service_port(port: Obj, path: str, require_name: bool, seen: set[str],
                           errs: Errors) -> None:
    name = get_str(port, "name", path, errs)
    if require_name and not name:
        errs.append(required(child(path, "name")))
    elif name:
        errs += _dns_label(name, child(path, "name"))
        if name in seen:
            errs.append(duplicate(child(path, "name"), name))
        seen.add(name)
    errs += _port_num(get_int(port, "port", path, errs) or 0, child(path, "port"))
    errs += _enum(get_str(port, "protocol", path, errs), child(path, "protocol"), PROTOCOLS)
    _port_num_or_name(port, "targetPort", path, errs)
    app_protocol = get_opt_str(port, "appProtocol", path, errs)
    if app_protocol is not None:
        errs += _qualified_name(app_protocol, child(path, "appProtocol"))


def _validate_service_ports(spec: Obj, stype: str, node_ports: tuple[int, int] | None,
                            errs: Errors) -> None:
    ports = [(item_obj(p, index("spec.ports", i), errs), index("spec.ports", i))
             for i, p in enumerate(get_list(spec, "ports", "spec", errs))]
    seen_names: set[str] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    seen_ports: set[tuple[str, int]] = set()
    for port, path in ports:
        if port is None:
            continue
        _validate_service_port(port, path, len(ports) > 1, seen_names, errs)
        proto = port.get("protocol") if isinstance(port.get("protocol"), str) else ""
        node_port = get_int(port, "nodePort", path, errs)
        if node_port:
            if stype in ("ClusterIP", "ExternalName"):
                errs.append(forbidden(child(path, "nodePort"),
                                      f"may not be used when `type` is '{stype}'"))
            elif node_ports is not None and not node_ports[0] <= node_port <= node_ports[1]:
                errs.append(invalid(child(path, "nodePort"), node_port, "provided port is not "
                                    "in the valid range. The range of valid ports is "
                                    f"{node_ports[0]}-{node_ports[1]}"))
            if (str(proto), node_port) in seen_node_ports:
                errs.append(duplicate(child(path, "nodePort"), node_port))
            seen_node_ports.add((str(proto), node_port))
        number = int(port["port"]) if is_int(port.get("port")) else 0
        if (str(proto), number) in seen_ports:
            errs.append(duplicate(path, {"port": number, "protocol": proto}))
        seen_ports.add((str(proto), number))


def _validate_cluster_ips(spec: Obj, errs: Errors) -> None:
    """clusterIP, clusterIPs, ipFamilies and ipFamilyPolicy agree (not for ExternalName)."""
    path = "spec.clusterIPs"
    cluster_ip = get_str(spec, "clusterIP", "spec", errs)
    ips = get_str_list(spec, "clusterIPs", "spec", errs)
    if cluster_ip:
        if not ips:
            errs.append(required(path))
        elif ips[0] != cluster_ip:
            errs.append(invalid(path, ips, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid(path, ips, "must be empty when `clusterIP` is not specified"))
    families = get_str_list(spec, "ipFamilies", "spec", errs)
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            errs.append(not_supported(index("spec.ipFamilies", i), family, ["IPv4", "IPv6"]))
        if family in families[:i]:
            errs.append(duplicate(index("spec.ipFamilies", i), family))
    policy = get_opt_str(spec, "ipFamilyPolicy", "spec", errs)
    if policy is not None and policy not in ("PreferDualStack", "RequireDualStack",
                                             "SingleStack"):
        errs.append(not_supported("spec.ipFamilyPolicy", policy,
                                  ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.append(invalid(path, ips, "'None' must be the first and only value"))
            continue
        ip_errs = _ip(ip, index(path, i))
        bad = bad or bool(ip_errs)
        errs += ip_errs
    if len(ips) > 2:
        errs.append(invalid(path, ips, "may only hold up to 2 values"))
    if bad:
        return
    if len(ips) > 1 and not _dual_stack(ips[:2]):
        errs.append(invalid(path, ips, "may specify no more than one IP for each IP family"))
    if not _is_headless(ips):
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            want = 4 if family == "IPv4" else 6 if family == "IPv6" else None
            if want is not None and _ip_family(ip) != want:
                errs.append(invalid(index(path, i), ip, f"expected an {family} value as "
                                    f"indicated by `ipFamilies[{i}]`"))


def _validate_traffic_policies(spec: Obj, stype: str, errs: Errors) -> None:
    etp = get_str(spec, "externalTrafficPolicy", "spec", errs)
    if not _externally_accessible(stype, spec):
        if etp:
            errs.append(invalid("spec.externalTrafficPolicy", etp,
                                "may only be set for externally-accessible services"))
    else:
        errs += _enum(etp, "spec.externalTrafficPolicy", ["Cluster", "Local"])
    hc = get_int(spec, "healthCheckNodePort", "spec", errs)
    if not _needs_health_check(stype, spec):
        if hc:
            errs.append(invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is "
                                "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif hc:
        errs += _port_num(hc, "spec.healthCheckNodePort")
    itp = get_opt_str(spec, "internalTrafficPolicy", "spec", errs)
    if itp is None:
        if stype in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif itp not in ("Cluster", "Local"):
        errs.append(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    distribution = get_opt_str(spec, "trafficDistribution", "spec", errs)
    supported = ["PreferClose", "PreferSameNode", "PreferSameZone"]
    if distribution is not None and distribution not in supported:
        errs.append(not_supported("spec.trafficDistribution", distribution, supported))


def _validate_load_balancer_fields(spec: Obj, stype: str, errs: Errors) -> None:
    lb = stype == "LoadBalancer"
    only_lb = "may only be used when `type` is 'LoadBalancer'"
    ranges = get_str_list(spec, "loadBalancerSourceRanges", "spec", errs)
    if ranges:
        if not lb:
            errs.append(forbidden("spec.loadBalancerSourceRanges", only_lb))
        for i, value in enumerate(ranges):
            errs += _cidr(value.strip(), index("spec.loadBalancerSourceRanges", i))
    allocate = get_bool(spec, "allocateLoadBalancerNodePorts", "spec", errs)
    if allocate is not None and not lb:
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", only_lb))
    if lb and allocate is None:
        errs.append(required("spec.allocateLoadBalancerNodePorts"))
    lb_class = get_opt_str(spec, "loadBalancerClass", "spec", errs)
    if lb_class is not None:
        if lb:
            errs += _qualified_name(lb_class, "spec.loadBalancerClass")
        else:
            errs.append(forbidden("spec.loadBalancerClass", only_lb))
    lb_ip = get_str(spec, "loadBalancerIP", "spec", errs)
    if lb_ip:
        errs += _ip(lb_ip, "spec.loadBalancerIP")


def _non_special_ip(ip: str, path: str) -> Errors:
    addr = ipaddress.ip_address(ip)
    errs = []
    if addr.is_unspecified:
        errs.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if addr.is_loopback:
        errs.append(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if addr.is_link_local:
        errs.append(invalid(path, ip,
                            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if addr.is_multicast and (addr in ipaddress.ip_network("224.0.0.0/24")
                              or addr in ipaddress.ip_network("ff02::/16")):
        errs.append(invalid(path, ip, "may not be in the link-local multicast range "
                            "(224.0.0.0/24, ff02::/10)"))
    return errs


def _validate_session_affinity(spec: Obj, errs: Errors) -> None:
    affinity = get_str(spec, "sessionAffinity", "spec", errs)
    errs += _enum(affinity, "spec.sessionAffinity", ["ClientIP", "None"])
    config = get_obj(spec, "sessionAffinityConfig", "spec", errs)
    path = "spec.sessionAffinityConfig"
    if affinity == "None" and config is not None:
        errs.append(forbidden(path, "must not be set when session affinity is None"))
    if affinity != "ClientIP":
        return
    when = "when session affinity type is ClientIP"
    client_ip = get_obj(config, "clientIP", path, errs)
    timeout = get_int(client_ip, "timeoutSeconds", child(path, "clientIP"), errs)
    if config is None:
        errs.append(required(path, when))
    elif client_ip is None:
        errs.append(required(child(path, "clientIP"), when))
    elif timeout is None:
        errs.append(required(child(path, "clientIP.timeoutSeconds"), when))
    elif not 0 < timeout <= 86400:
        errs.append(invalid(child(path, "clientIP.timeoutSeconds"), timeout,
                            "must be greater than 0 and less than 86400"))


def validate_service(new: Obj, old: Obj | None, *,
                     node_port_range: tuple[int, int] | Literal["cluster"] | None = "cluster"
                     ) -> list[FieldError]:
    """ValidateService (and ValidateServiceUpdate when `old` is set). `node_port_range` is the
    range for spec.ports[*].nodePort: by default NODE_PORT_RANGE; None skips the check."""
    if node_port_range == "cluster":
        node_port_range = NODE_PORT_RANGE
    errs: Errors = []
    spec = _spec(new, errs)
    stype = get_str(spec, "type", "spec", errs)
    ips = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)] if isinstance(
        spec.get("clusterIPs"), list) else []
    headless = _is_headless(ips)
    if not get_list(spec, "ports", "spec", []) and not headless and stype != "ExternalName":
        errs.append(required("spec.ports"))
    if stype in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            f"may not be set to 'None' for {stype} services"))
    elif stype == "ExternalName":
        for field in ("clusterIPs", "ipFamilies"):
            if spec.get(field):
                errs.append(forbidden(child("spec", field),
                                      "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName "
                                  "services"))
        cname = get_str(spec, "externalName", "spec", errs).removesuffix(".")
        if cname:
            errs += _dns_subdomain(cname, "spec.externalName")
        else:
            errs.append(required("spec.externalName"))
    _validate_service_ports(spec, stype, node_port_range, errs)
    selector = get_str_map(spec, "selector", "spec", errs)
    errs += validate_labels(selector, "spec.selector")
    _validate_session_affinity(spec, errs)
    if stype != "ExternalName":
        _validate_cluster_ips(spec, errs)
    for i, ip in enumerate(get_str_list(spec, "externalIPs", "spec", errs)):
        ip_errs = _ip(ip, index("spec.externalIPs", i))
        errs += ip_errs or _non_special_ip(ip, index("spec.externalIPs", i))
    errs += _enum(stype, "spec.type", _SERVICE_TYPES)
    _validate_load_balancer_fields(spec, stype, errs)
    _validate_traffic_policies(spec, stype, errs)
    if old is not None:
        errs += _validate_service_update(spec, as_dict(old.get("spec")))
    return errs


def _str_list(spec: Obj, field: str) -> list[str]:
    value = spec.get(field)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _validate_service_update(spec: Obj, old_spec: Obj) -> Errors:
    """Cluster IPs and IP families may grow or shrink by a secondary, never change, unless the
    Service turns into or out of an ExternalName."""
    errs: Errors = []
    stype, old_type = spec.get("type"), old_spec.get("type")
    if "ExternalName" in (stype, old_type):
        return errs
    new_ips, old_ips = _str_list(spec, "clusterIPs"), _str_list(old_spec, "clusterIPs")
    policy = spec.get("ipFamilyPolicy")
    if not (_is_headless(new_ips) and _is_headless(old_ips)):
        if len(new_ips) == len(old_ips):
            for i, ip in enumerate(old_ips):
                if ip != new_ips[i]:
                    errs.append(invalid(index("spec.clusterIPs", i), new_ips,
                                        "may not change once set"))
        elif len(new_ips) < len(old_ips):
            if not new_ips:
                errs.append(invalid("spec.clusterIPs[0]", new_ips,
                                    "primary clusterIP can not be unset"))
            elif new_ips[0] != old_ips[0]:
                errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
            if len(new_ips) == 1 and policy != "SingleStack":
                errs.append(invalid("spec.ipFamilyPolicy", policy, "must be set to "
                                    "'SingleStack' when releasing the secondary clusterIP"))
        elif old_ips and new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    new_fam, old_fam = _str_list(spec, "ipFamilies"), _str_list(old_spec, "ipFamilies")
    if _is_headless(new_ips) == _is_headless(old_ips) and not _is_headless(new_ips):
        if len(new_fam) == len(old_fam):
            if new_fam != old_fam:
                errs.append(invalid("spec.ipFamilies[0]", new_fam, "may not change once set"))
        elif len(new_fam) < len(old_fam):
            if new_fam and new_fam[0] != old_fam[0]:
                errs.append(invalid("spec.ipFamilies[0]", new_fam, "may not change once set"))
            if len(new_fam) == 1 and policy != "SingleStack":
                errs.append(invalid("spec.ipFamilyPolicy", policy, "must be set to "
                                    "'SingleStack' when releasing the secondary ipFamily"))
        elif old_fam and new_fam[0] != old_fam[0]:
            errs.append(invalid("spec.ipFamilies[0]", new_fam, "may not change once set"))
    if stype == old_type == "LoadBalancer" and (spec.get("loadBalancerClass")
                                                != old_spec.get("loadBalancerClass")):
        errs.append(invalid("spec.loadBalancerClass", spec.get("loadBalancerClass"),
                            "may not change once set"))
    if (_needs_health_check(str(stype), spec) and _needs_health_check(str(old_type), old_spec)
            and spec.get("healthCheckNodePort") != old_spec.get("healthCheckNodePort")):
        errs.append(forbidden("spec.healthCheckNodePort", FIELD_IMMUTABLE))
    return errs


def validate_service_status(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    spec = as_obj(new.get("spec"), "spec", []) or {}
    status = as_obj(new.get("status"), "status", errs) or {}
    lb = get_obj(status, "loadBalancer", "status", errs)
    path = "status.loadBalancer.ingress"
    ingress = get_list(lb, "ingress", "status.loadBalancer", errs)
    if ingress and spec.get("type") != "LoadBalancer":
        return [*errs, forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")]
    for i, item in enumerate(ingress):
        p = index(path, i)
        entry = item_obj(item, p, errs)
        if entry is None:
            continue
        ip = get_str(entry, "ip", p, errs)
        if ip:
            errs += _ip(ip, child(p, "ip"))
        mode = get_opt_str(entry, "ipMode", p, errs)
        if mode is None:
            if ip:
                errs.append(required(child(p, "ipMode"), "must be specified when `ip` is set"))
        elif not ip:
            errs.append(forbidden(child(p, "ipMode"), "may not be specified when `ip` is not set"))
        elif mode not in ("Proxy", "VIP"):
            errs.append(not_supported(child(p, "ipMode"), mode, ["Proxy", "VIP"]))
        hostname = get_str(entry, "hostname", p, errs)
        if hostname:
            errs += _dns_subdomain(hostname, child(p, "hostname"))
            if _ip_family(hostname) is not None:
                errs.append(invalid(child(p, "hostname"), hostname,
                                    "must be a DNS name, not an IP address"))
    return errs


# -- namespaces ---------------------------------------------------------------------------------

def validate_namespace(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    spec = _spec(new, errs)
    for i, name in enumerate(get_str_list(spec, "finalizers", "spec", errs)):
        path = index("spec.finalizers", i)
        errs += validate_finalizer_name(name, path, path)
    return errs


def validate_namespace_status(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    status = as_obj(new.get("status"), "status", errs) or {}
    phase = get_str(status, "phase", "status", errs)
    if not as_dict(new.get("metadata")).get("deletionTimestamp"):
        if phase != "Active":
            errs.append(invalid("status.phase", phase,
                                "may only be 'Active' if `deletionTimestamp` is empty"))
    elif phase != "Terminating":
        errs.append(invalid("status.phase", phase,
                            "may only be 'Terminating' if `deletionTimestamp` is not empty"))
    _validate_conditions(status, "status", set(), errs)
    return errs


# -- nodes ----------------------------------------------------------------------------------------

def _validate_taints(spec: Obj, errs: Errors) -> None:
    path = "spec.taints"
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(get_list(spec, "taints", "spec", errs)):
        p = index(path, i)
        taint = item_obj(item, p, errs)
        if taint is None:
            continue
        k = get_str(taint, "key", p, errs)
        value = get_str(taint, "value", p, errs)
        effect = get_str(taint, "effect", p, errs)
        errs += _qualified_name(k, child(p, "key"))
        msgs = names.is_label_value(value)
        if msgs:
            errs.append(invalid(child(p, "value"), value, ";".join(msgs)))
        errs += _taint_effect(effect, child(p, "effect"))
        if (k, effect) in seen:
            errs.append(FieldError("FieldValueDuplicate", p, taint,
                                   "taints must be unique by key and effect pair"))
            continue
        seen.add((k, effect))


def validate_node(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    spec = _spec(new, errs)
    _validate_taints(spec, errs)
    get_bool(spec, "unschedulable", "spec", errs)
    pod_cidr = get_str(spec, "podCIDR", "spec", errs)
    if pod_cidr:
        errs += _cidr(pod_cidr, "spec.podCIDR")
    cidrs = get_str_list(spec, "podCIDRs", "spec", errs)
    path = "spec.podCIDRs"
    for i, cidr in enumerate(cidrs):
        errs += _cidr(cidr, index(path, i))
    if len(cidrs) > 1:
        if not _dual_stack(cidrs, cidr=True):
            errs.append(invalid(path, cidrs, "may specify no more than one CIDR for each IP "
                                "family"))
        for i, cidr in enumerate(cidrs):
            if cidr in cidrs[:i]:
                errs.append(duplicate(index(path, i), cidr))
    status = as_obj(new.get("status"), "status", errs) or {}
    _quantities(status, "capacity", "status", errs)
    _quantities(status, "allocatable", "status", errs)
    errs += _validate_addresses(status)
    if old is not None:
        errs += _validate_node_update(spec, as_dict(old.get("spec")))
    return errs


def _validate_node_update(spec: Obj, old_spec: Obj) -> Errors:
    errs: Errors = []
    old_cidrs = _str_list(old_spec, "podCIDRs")
    if old_cidrs and old_cidrs != _str_list(spec, "podCIDRs"):
        errs.append(forbidden("spec.podCIDRs",
                              'node updates may not change podCIDR except from "" to valid'))
    old_provider = old_spec.get("providerID")
    if old_provider and old_provider != spec.get("providerID"):
        errs.append(forbidden("spec.providerID",
                              'node updates may not change providerID except from "" to valid'))
    if spec.get("externalID") != old_spec.get("externalID"):
        errs.append(forbidden("spec.externalID", "may not be updated"))
    return errs


_ADDRESS_TYPES = ["Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS"]


def _validate_addresses(status: Obj) -> Errors:
    errs: Errors = []
    path = "status.addresses"
    seen: list[Obj] = []
    for i, item in enumerate(get_list(status, "addresses", "status", errs)):
        p = index(path, i)
        addr = item_obj(item, p, errs)
        if addr is None:
            continue
        atype = get_str(addr, "type", p, errs)
        value = get_str(addr, "address", p, errs)
        errs += _enum(atype, child(p, "type"), _ADDRESS_TYPES)
        if atype in ("InternalIP", "ExternalIP"):
            errs += _ip(value, child(p, "address"))
        elif not value:
            errs.append(required(child(p, "address")))
        entry = {"address": value, "type": atype}
        if entry in seen:
            errs.append(duplicate(p, entry))
        seen.append(entry)
    return errs


def validate_node_status(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    status = as_obj(new.get("status"), "status", errs) or {}
    errs += _validate_addresses(status)
    _quantities(status, "capacity", "status", errs)
    _quantities(status, "allocatable", "status", errs)
    _validate_conditions(status, "status", set(), errs)
    return errs


# -- secrets ------------------------------------------------------------------------------------

_REDACTED = "<secret contents redacted>"


def _secret_data(new: Obj, errs: Errors) -> tuple[dict[str, bytes], int]:
    """The decoded data of a Secret (stringData included) and its total size."""
    out: dict[str, bytes] = {}
    size = 0
    for field, encoded in (("data", True), ("stringData", False)):
        value = as_obj(new.get(field), field, errs) or {}
        for k, v in value.items():
            path = key(field, k)
            errs += msgs_to_errors(path, k, is_config_map_key(k))
            if not isinstance(v, str):
                errs.append(type_error(path, _REDACTED, "string"))
                continue
            if encoded:
                try:
                    raw = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    errs.append(invalid(path, _REDACTED, "must be a base64-encoded string"))
                    continue
            else:
                raw = v.encode()
            out[k] = raw
            size += len(raw)
    return out, size


def validate_secret(new: Obj, old: Obj | None) -> list[FieldError]:
    errs: Errors = []
    data, size = _secret_data(new, errs)
    if size > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    stype = get_str(new, "type", "", errs)
    get_bool(new, "immutable", "", errs)
    annotations = as_dict(as_dict(new.get("metadata")).get("annotations"))
    if stype == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required(
                "metadata.annotations[kubernetes.io/service-account.name]"))
    elif stype in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        data_key = ".dockercfg" if stype.endswith("dockercfg") else ".dockerconfigjson"
        if data_key not in data:
            errs.append(required(key("data", data_key)))
        else:
            try:
                parsed = json.loads(data[data_key])
                ok = isinstance(parsed, dict)
            except ValueError:
                ok = False
            if not ok:
                errs.append(invalid(key("data", data_key), _REDACTED,
                                    "must be a JSON object"))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs += [required("data[username]"), required("data[password]")]
    elif stype == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            errs.append(required("data[ssh-privatekey]"))
    elif stype == "kubernetes.io/tls":
        for k in ("tls.crt", "tls.key"):
            if k not in data:
                errs.append(required(key("data", k)))
    if old is not None:
        errs += _validate_secret_update(new, old)
    return errs


def _validate_secret_update(new: Obj, old: Obj) -> Errors:
    errs: Errors = []
    if new.get("type") != old.get("type"):
        errs.append(invalid("type", new.get("type"), FIELD_IMMUTABLE))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if (new.get("data") or {}) != (old.get("data") or {}) or new.get("stringData"):
            errs.append(forbidden("data", "field is immutable when `immutable` is set"))
    return errs


# -- events -------------------------------------------------------------------------------------

def validate_event(new: Obj, old: Obj | None) -> list[FieldError]:
    """core/v1 Events: the legacy rules, kept loose for old clients."""
    errs: Errors = []
    namespace = as_dict(new.get("metadata")).get("namespace") or ""
    if new.get("involvedObject") is None:
        errs.append(required("involvedObject"))
    involved = get_obj(new, "involvedObject", "", errs)
    obj_ns = get_str(involved, "namespace", "involvedObject", errs)
    for field in ("kind", "name", "apiVersion", "uid", "fieldPath", "resourceVersion"):
        get_str(involved, field, "involvedObject", errs)
    mismatch = invalid("involvedObject.namespace", obj_ns, "does not match event.namespace")
    reason = get_str(new, "reason", "", errs)
    message = get_str(new, "message", "", errs)
    for field in ("type", "action", "reportingComponent", "reportingInstance"):
        get_str(new, field, "", errs)
    get_int(new, "count", "", errs)
    if not new.get("eventTime"):
        if obj_ns:
            if namespace != obj_ns:
                errs.append(mismatch)
        elif namespace not in ("", "default"):
            errs.append(mismatch)
        return errs
    if not obj_ns and namespace not in ("default", "kube-system"):
        errs.append(mismatch)
    controller = get_str(new, "reportingComponent", "", [])
    if not controller:
        errs.append(required("reportingController"))
    errs += _qualified_name(controller, "reportingController")
    instance = get_str(new, "reportingInstance", "", [])
    if not instance:
        errs.append(required("reportingInstance"))
    action = get_str(new, "action", "", [])
    if not action:
        errs.append(required("action"))
    if not reason:
        errs.append(required("reason"))
    for field, value, limit in (("reportingInstance", instance, 128), ("action", action, 128),
                                ("reason", reason, 128), ("message", message, 1024)):
        if len(value) > limit:
            errs.append(invalid(field, "", f"can have at most {limit} characters"))
    return errs


VALIDATORS: dict[tuple[str, str], Validator] = {
    ("v1", "Namespace"): validate_namespace,
    ("v1", "Node"): validate_node,
    ("v1", "Pod"): validate_pod,
    ("v1", "Service"): validate_service,
    ("v1", "Secret"): validate_secret,
    ("v1", "Event"): validate_event,
}

STATUS_VALIDATORS: dict[tuple[str, str], Validator] = {
    ("v1", "Namespace"): validate_namespace_status,
    ("v1", "Node"): validate_node_status,
    ("v1", "Pod"): validate_pod_status,
    ("v1", "Service"): validate_service_status,
}
