"""`podnet policy matrix|explain`: who can reach whom under the NetworkPolicies, and why.

    podnet policy matrix [-f DIR|FILE ...] [--ports 80/TCP,81/UDP] [--namespaces x,y]
                         [-o table|json|csv]
    podnet policy explain --from NS/POD --to NS/POD --port 80/TCP|NAME[/PROTO] [-f DIR|FILE ...]

Both read the same inputs, compile them with podnet.policy.model and print what
podnet.policy.analyze makes of the model:

    live (no -f)   the cluster's Pods, Namespaces and NetworkPolicies, listed from its API
    offline (-f)   manifests (files, directories of *.yaml/*.yml/*.json, `-` for stdin; several
                   documents per file and `kind: List` are read). No cluster and no root needed.
                   NetworkPolicies are defaulted and validated as the API would (an invalid one is
                   an error naming the file, the object and the field); Namespaces come from the
                   Namespace objects and from the namespaces other objects name, each labelled
                   kubernetes.io/metadata.name as the API labels them; Pods without status.podIP
                   get made-up addresses from 10.0.0.0/8, in manifest order. Other kinds are
                   ignored, with a note on stderr.

Pods that take no part (no IP yet, host network, finished) are named in a note on stderr, so
nothing disappears silently; stdout carries only the answer. Exit status: 0 when there is an
answer (a denial is an answer too), 1 on bad input or when the cluster cannot be read.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from podnet.api import names
from podnet.api.defaults import apply_defaults
from podnet.api.errors import FieldError, invalid_message
from podnet.api.resources import Resource, lookup
from podnet.api.validation import validate
from podnet.api.validation.meta import validate_object_meta
from podnet.cli.apply import Manifest, load_manifests
from podnet.client.http import Client
from podnet.cluster.state import ClusterState

if TYPE_CHECKING:
    from podnet.policy.model import PolicyModel

# podnet.policy is imported by the functions that run the commands, not here: the `podnet`
# command line (which also starts the server and the agents) must not depend on it.

DEFAULT_NAMESPACE = "default"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
OUTPUT_FORMATS = ("table", "json", "csv")
PROTOCOLS = ("TCP", "UDP", "SCTP")  # podnet.policy.model.PROTOCOLS (a test checks they agree)
SYNTHETIC_NET = ipaddress.IPv4Network("10.0.0.0/8")

POD = ("v1", "Pod")
NAMESPACE = ("v1", "Namespace")
NETWORK_POLICY = ("networking.k8s.io/v1", "NetworkPolicy")
USED_KINDS = (POD, NAMESPACE, NETWORK_POLICY)

Obj = dict[str, Any]
Target = tuple[str, int]  # (protocol, port), as analyze takes it


class InputError(Exception):
    """Bad input, worded for the user: printed as is, exit status 1."""


@dataclass
class Inputs:
    """What the model is compiled from: API objects (pods, policies) and namespace labels."""

    pods: list[Obj] = field(default_factory=list)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    policies: list[Obj] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for stderr


# -- arguments --------------------------------------------------------------------------------


def parse_target(text: str) -> Target:
    """`80/TCP`, `53/udp` or `80` (TCP) -> ("TCP", 80); InputError when it is no such thing."""
    port_text, sep, proto = text.strip().partition("/")
    protocol = proto.upper() if sep else "TCP"
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
    if not 1 <= port <= 65535 or protocol not in PROTOCOLS:
        raise InputError(f'error: invalid port "{text}": want PORT[/PROTOCOL] with PORT in '
                         f"1-65535 and PROTOCOL one of {', '.join(PROTOCOLS)}")
    return protocol, port


def parse_explain_port(text: str) -> tuple[str, int | str]:
    """`80/TCP`, `80`, or a named port `http/TCP`, `http` (TCP) -> (protocol, number or name);
    InputError when it is neither. A name is resolved on the destination pod later."""
    name, sep, proto = text.strip().partition("/")
    if name.isascii() and name.isdigit():
        return parse_target(text)
    protocol = proto.upper() if sep else "TCP"
    if names.is_port_name(name) or protocol not in PROTOCOLS:
        raise InputError(f'error: invalid port "{text}": want PORT[/PROTOCOL] or '
                         f"NAME[/PROTOCOL] with PORT in 1-65535, NAME a port name the "
                         f"destination pod declares, and PROTOCOL one of "
                         f"{', '.join(PROTOCOLS)}")
    return protocol, name


def parse_targets(text: str) -> list[Target]:
    """A comma-separated list of targets, in the order given, without repeats."""
    out: list[Target] = []
    for part in text.split(","):
        target = parse_target(part)
        if target not in out:
            out.append(target)
    return out


def parse_pod_ref(text: str, namespace: str) -> str:
    """`NS/POD` (or `POD`, in `namespace`) -> the pod's key `NS/POD`."""
    ns, sep, name = text.partition("/")
    if not sep:
        ns, name = namespace, text
    if not ns or not name or "/" in name:
        raise InputError(f'error: invalid pod "{text}": want NAMESPACE/NAME')
    return f"{ns}/{name}"


def split_list(text: str | None) -> list[str]:
    return [w.strip() for w in (text or "").split(",") if w.strip()]


# -- offline inputs ---------------------------------------------------------------------------


def _kind_of(doc: Mapping[str, Any]) -> tuple[str, str]:
    return str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")


def _meta(doc: Mapping[str, Any]) -> Obj:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _name(meta: Mapping[str, Any]) -> str:
    return str(meta.get("name") or "<unnamed>")


def _describe(doc: Mapping[str, Any]) -> str:
    """`Deployment web`, or `Deployment shop/web` when the document names its namespace; a
    kind policy reads, in another version, with that version: `NetworkPolicy
    (extensions/v1beta1) shop/web`."""
    api_version, kind = _kind_of(doc)
    if kind in {k for _, k in USED_KINDS}:
        kind = f"{kind} ({api_version})"
    meta = _meta(doc)
    ns = meta.get("namespace")
    return f"{kind} {ns}/{_name(meta)}" if ns else f"{kind} {_name(meta)}"


def _invalid(source: str, kind: str, key: str, errs: list[FieldError]) -> InputError:
    return InputError(f"error: {source}: {invalid_message(kind, key, errs)}")


def _normalized(doc: Mapping[str, Any], namespace: str | None) -> Obj:
    """A deep copy of a document with its namespace set (namespaced kinds) and the API's
    defaults filled in."""
    out: Obj = copy.deepcopy(dict(doc))
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    if namespace is not None:
        meta["namespace"] = meta.get("namespace") or namespace
    apply_defaults(out)
    return out


def _check_policy(obj: Obj, source: str) -> None:
    errs = validate(obj)
    if errs:
        meta = _meta(obj)
        raise _invalid(source, "NetworkPolicy", f"{meta.get('namespace')}/{_name(meta)}", errs)


def _check_namespace(obj: Obj, source: str) -> None:
    errs = validate(obj)
    if errs:
        raise _invalid(source, "Namespace", _name(_meta(obj)), errs)


def _check_pod(obj: Obj, source: str) -> None:
    """What policy reads of a pod: its metadata (name, labels) and its IP."""
    errs = validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    status = obj.get("status")
    if status is not None and not isinstance(status, dict):
        errs.append(FieldError("FieldValueInvalid", "status", status, "must be of type object"))
    ip = status.get("podIP") if isinstance(status, dict) else None
    if ip not in (None, ""):
        try:
            ipaddress.IPv4Address(str(ip))
        except ValueError:
            errs.append(FieldError("FieldValueInvalid", "status.podIP", ip,
                                   "must be a valid IPv4 address"))
    if errs:
        meta = _meta(obj)
        raise _invalid(source, "Pod", f"{meta.get('namespace')}/{_name(meta)}", errs)


def _require_kind(doc: Mapping[str, Any], source: str) -> None:
    missing = [f"{f} not set" for f in ("apiVersion", "kind") if not doc.get(f)]
    if missing:
        raise InputError(f'error: error validating "{source}": error validating data: '
                         f"[{', '.join(missing)}]")


def offline_inputs(manifests: Sequence[Manifest], namespace: str) -> Inputs:
    """The inputs the manifests describe; InputError on the first bad document.

    `namespace` is where documents without metadata.namespace go.
    """
    out = Inputs()
    seen: dict[tuple[str, str], str] = {}  # (kind, ns/name) -> source
    ignored: list[str] = []
    named_namespaces: list[str] = []
    for m in manifests:
        if m.doc is None:
            raise InputError(m.error or f"error: cannot read {m.source}")
        _require_kind(m.doc, m.source)
        gvk = _kind_of(m.doc)
        if gvk not in USED_KINDS:
            ignored.append(_describe(m.doc))
            continue
        obj = _normalized(m.doc, None if gvk == NAMESPACE else namespace)
        meta = _meta(obj)
        if gvk == NAMESPACE:
            _check_namespace(obj, m.source)
            key = str(meta["name"])
            labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            out.namespaces[key] = labels
        else:
            (_check_pod if gvk == POD else _check_policy)(obj, m.source)
            key = f"{meta['namespace']}/{meta['name']}"
            named_namespaces.append(str(meta["namespace"]))
            (out.pods if gvk == POD else out.policies).append(obj)
        if (gvk[1], key) in seen:
            raise InputError(f"error: {m.source}: {gvk[1]} {key} is defined twice (first in "
                             f"{seen[(gvk[1], key)]})")
        seen[(gvk[1], key)] = m.source
    for ns in named_namespaces:
        out.namespaces.setdefault(ns, {NAMESPACE_NAME_LABEL: ns})
    assign_synthetic_ips(out.pods)
    if ignored:
        out.notes.append("note: ignored (policy analysis reads Pods, Namespaces and "
                         f"NetworkPolicies only): {', '.join(ignored)}")
    return out


def _takes_part(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec")
    status = pod.get("status")
    host = isinstance(spec, dict) and spec.get("hostNetwork") is True
    phase = status.get("phase") if isinstance(status, dict) else None
    return not host and phase not in ("Succeeded", "Failed")


def assign_synthetic_ips(pods: Iterable[Obj]) -> None:
    """Give each pod that takes part and has no status.podIP the next free address of
    SYNTHETIC_NET (10.0.0.1, 10.0.0.2, ... in the order given), skipping the addresses the
    manifests give pods themselves. Made up, but deterministic."""
    pods = list(pods)
    taken = {str((p.get("status") or {}).get("podIP")) for p in pods}
    hosts = SYNTHETIC_NET.hosts()
    for pod in pods:
        status = pod.setdefault("status", {})
        if status.get("podIP") or not _takes_part(pod):
            continue
        ip = str(next(hosts))
        while ip in taken:
            ip = str(next(hosts))
        taken.add(ip)
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]


def read_offline(paths: list[str], namespace: str, stdin: TextIO | None = None) -> Inputs:
    manifests = load_manifests(paths, stdin)
    if not manifests:
        raise InputError(f"error: no objects found in {', '.join(paths)}")
    return offline_inputs(manifests, namespace)


# -- live inputs ------------------------------------------------------------------------------


def _resource(kind: str) -> Resource:
    res = lookup(kind)
    assert res is not None, kind
    return res


def live_inputs(client: Client) -> Inputs:
    """The cluster's pods, namespaces (with their labels) and policies, listed from its API."""
    out = Inputs()
    for ns in client.list(_resource("namespaces")).get("items") or []:
        meta = _meta(ns)
        name = str(meta.get("name"))
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        out.namespaces[name] = labels
    out.pods = list(client.list(_resource("pods")).get("items") or [])
    out.policies = list(client.list(_resource("networkpolicies")).get("items") or [])
    return out


def read_live(name: str | None) -> Inputs:
    with Client.from_state(ClusterState.locate(name)) as client:
        return live_inputs(client)


# -- compiling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    model: PolicyModel
    keys: dict[str, str]  # every pod listed: key -> "" (in the model) or why it is not
    namespaces: frozenset[str]


def _absence(pod: Mapping[str, Any]) -> str:
    """Why a pod is not in the model."""
    spec = pod.get("spec")
    if isinstance(spec, dict) and spec.get("hostNetwork") is True:
        return "host network"
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return f"finished ({phase})"
    return "no IP yet"


def compile_inputs(inputs: Inputs) -> Compiled:
    from podnet.policy import model

    pods: list[model.Pod] = []
    keys: dict[str, str] = {}
    for obj in inputs.pods:
        meta = _meta(obj)
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        pod = model.pod_from_api(obj)
        if pod is None or pod.ip is None:
            keys[key] = _absence(obj)
            continue
        keys[key] = ""
        pods.append(pod)
    compiled = model.compile_model(pods, inputs.namespaces, inputs.policies)
    return Compiled(compiled, keys, frozenset(inputs.namespaces))


def absent_notes(keys: Mapping[str, str], shown: Iterable[str] | None = None) -> list[str]:
    """One note per reason, naming the pods (of `shown` namespaces, if given) left out."""
    wanted = None if shown is None else set(shown)
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(keys.items()):
        if reason and (wanted is None or key.partition("/")[0] in wanted):
            by_reason.setdefault(reason, []).append(key)
    return [f"note: not in the matrix ({reason}): {', '.join(pods)}"
            for reason, pods in sorted(by_reason.items())]


# -- the commands -----------------------------------------------------------------------------


def _inputs(args: argparse.Namespace) -> Inputs:
    if args.filename:
        return read_offline(args.filename, str(args.namespace or DEFAULT_NAMESPACE))
    return read_live(args.name)


def _write(text: str, out: TextIO) -> None:
    if text:
        out.write(text if text.endswith("\n") else text + "\n")


def _note(lines: Iterable[str], err: TextIO) -> None:
    for line in lines:
        print(line, file=err)


def run_matrix(inputs: Inputs, namespaces: list[str], ports: str | None, fmt: str,
               out: TextIO, err: TextIO) -> int:
    from podnet.policy import analyze

    targets = parse_targets(ports) if ports is not None else None
    compiled = compile_inputs(inputs)
    for ns in namespaces:
        if ns not in compiled.namespaces:
            raise InputError(f'error: namespace "{ns}" not found')
    keys = sorted(k for k in compiled.model.pods
                  if not namespaces or k.partition("/")[0] in namespaces)
    m = analyze.matrix(compiled.model, keys, targets)
    out.flush()
    _note(inputs.notes, err)
    _note(absent_notes(compiled.keys, namespaces or None), err)
    text = {"table": analyze.format_table, "json": analyze.to_json, "csv": analyze.to_csv}[fmt](m)
    _write(text, out)
    return 0


def _check_pod_present(compiled: Compiled, key: str) -> None:
    reason = compiled.keys.get(key)
    if reason is None:
        raise InputError(f'error: pod "{key}" not found')
    if reason:
        raise InputError(f'error: pod "{key}" takes no part in policy ({reason})')


def run_explain(inputs: Inputs, src: str, dst: str, port: str, out: TextIO,
                err: TextIO) -> int:
    from podnet.policy import analyze

    protocol, given = parse_explain_port(port)
    compiled = compile_inputs(inputs)
    for key in (src, dst):
        _check_pod_present(compiled, key)
    number = given if isinstance(given, int) else \
        _named_port(compiled.model, dst, given, protocol)
    _note(inputs.notes, err)
    if not isinstance(given, int):
        _write(f'port "{given}" of {dst} is {number}/{protocol}\n', out)
    _write(analyze.explain(compiled.model, src, dst, protocol, number), out)
    return 0


def _named_port(m: PolicyModel, pod: str, name: str, protocol: str) -> int:
    """The number of the container port `name` (for `protocol`) that `pod` declares."""
    declared = m.pods[pod].pod.ports
    for p in declared:
        if p.name == name and p.protocol == protocol:
            return p.number
    listed = ", ".join(f'"{p.name}" {p.number}/{p.protocol}' for p in declared if p.name)
    raise InputError(f'error: pod "{pod}" declares no port named "{name}" for {protocol} '
                     f"({'its named ports: ' + listed if listed else 'it names none'})")


def cmd_matrix(args: argparse.Namespace) -> int:
    try:
        return run_matrix(_inputs(args), split_list(args.namespaces), args.ports,
                          args.output, sys.stdout, sys.stderr)
    except InputError as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        return 1


def cmd_explain(args: argparse.Namespace) -> int:
    namespace = str(args.namespace or DEFAULT_NAMESPACE)
    try:
        src = parse_pod_ref(args.src, namespace)
        dst = parse_pod_ref(args.dst, namespace)
        parse_explain_port(args.port)  # bad input is reported before the cluster is read
        return run_explain(_inputs(args), src, dst, args.port, sys.stdout, sys.stderr)
    except InputError as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        return 1


# -- the parser -------------------------------------------------------------------------------

_FILENAME_HELP = (
    "offline: read these manifests (a file, a directory of *.yaml/*.yml/*.json, or - for "
    "stdin; repeatable) instead of the cluster. No cluster or root needed. Pods without "
    "status.podIP get MADE-UP addresses from 10.0.0.0/8 (10.0.0.1, 10.0.0.2, ... in manifest "
    "order, skipping addresses the manifests give): ipBlock rules are judged against these; "
    "set status.podIP in a manifest to use a real address")


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """`matrix` and `explain` under `podnet policy`; `common` carries --name and -n."""
    sub = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    help_ = ("the reachability matrix of pods x pods under the NetworkPolicies ('.' allowed, "
             "'X' denied), live or offline with -f")
    p = sub.add_parser("matrix", parents=[common], help=help_, description=help_)
    p.add_argument("-f", "--filename", action="append", metavar="FILE", help=_FILENAME_HELP)
    p.add_argument("--ports", metavar="PORT/PROTO,...",
                   help="the targets to probe, e.g. 80/TCP,53/UDP (PROTO defaults to TCP; "
                        "default: each destination pod's declared container ports)")
    p.add_argument("--namespaces", metavar="NS,...",
                   help="only pods of these namespaces (default: all)")
    p.add_argument("-o", "--output", choices=OUTPUT_FORMATS, default="table",
                   help="table (default), json or csv")
    p.set_defaults(func=cmd_matrix)

    help_ = ("whether one connection is allowed, and which policies and rules decided it on "
             "each side")
    p = sub.add_parser("explain", parents=[common], help=help_, description=help_)
    p.add_argument("--from", dest="src", required=True, metavar="NS/POD",
                   help="the client pod (a bare POD is in -n NS)")
    p.add_argument("--to", dest="dst", required=True, metavar="NS/POD",
                   help="the server pod (a bare POD is in -n NS)")
    p.add_argument("--port", required=True, metavar="PORT[/PROTO]",
                   help="the destination port, e.g. 80/TCP or 53/UDP, or a port name the "
                        "destination pod declares, e.g. http or dns/UDP (PROTO defaults to "
                        "TCP)")
    p.add_argument("-f", "--filename", action="append", metavar="FILE", help=_FILENAME_HELP)
    p.set_defaults(func=cmd_explain)
