"""The `podnet` command line.

    podnet up | down | status | kubeconfig          the cluster on this machine (--name N)
    podnet up --nodes N --backend host-gw|vxlan     ... with N nodes (default 2; 0: no lab)
    podnet up --dns-upstream IP[:PORT]              ... its cluster DNS forwarding there
    podnet up --no-ingress                          ... without the ingress (HAProxy)
    podnet apply -f FILE|DIR|-                       client-side apply, as kubectl's
    podnet get KIND [NAME...] [-n NS|-A] [-o FMT]    server-side tables, YAML, JSON, names
    podnet delete (-f FILE | KIND NAME...)           delete and wait until gone
    podnet exec node/NAME|external -- CMD...         run CMD in a machine of the lab
    podnet policy matrix [-f DIR] [--ports 80/TCP]   who can reach whom under NetworkPolicy
    podnet policy explain --from NS/POD --to NS/POD --port 80/TCP   ... and why
    podnet server --state-dir DIR                    the API server process (podnet.server)
    podnet agent --state-dir DIR --node NODE         a node agent process (podnet.agent)

Errors go to stderr worded as kubectl words them and make the exit status 1; usage errors
exit 2. Output is only what was asked for, so scripts can rely on it and on exit codes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from podnet.api.resources import Resource, lookup
from podnet.cli import output, policy
from podnet.cli.apply import (
    ManifestError,
    Target,
    apply_manifests,
    doc_target,
    load_manifests,
)
from podnet.client.http import ApiError, Client, ClientError
from podnet.cluster import lifecycle
from podnet.cluster.lifecycle import ClusterError
from podnet.cluster.state import CNI_PLUGINS, DEFAULT_CNI, ClusterState, StateError
from podnet.kernel import netns
from podnet.lab import names as lab_names
from podnet.lab import topology

DEFAULT_NAMESPACE = "default"
OUTPUT_FORMATS = ("wide", "yaml", "json", "name")


class CommandError(Exception):
    """A failure already worded for the user (printed as is, exit status 1)."""


# -- helpers ----------------------------------------------------------------------------------


def _err(message: str) -> None:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


def _state(args: argparse.Namespace) -> ClusterState:
    return ClusterState.locate(args.name)


def _client(args: argparse.Namespace) -> Client:
    return Client.from_state(_state(args))


def _namespace(args: argparse.Namespace) -> str:
    return str(args.namespace or DEFAULT_NAMESPACE)


def resolve_kind(kind: str) -> Resource:
    """The resource a user means by KIND, or CommandError worded as kubectl's."""
    res = lookup(kind)
    if res is None:
        raise CommandError(f'error: the server doesn\'t have a resource type "{kind}"')
    return res


def split_kind_names(words: Sequence[str]) -> list[tuple[Resource, str | None]]:
    """`KIND [NAME...]` or `KIND/NAME...` into (resource, name) pairs; a bare KIND gives one
    pair with name None."""
    if not words:
        raise CommandError("error: you must specify the type of resource to get")
    if all("/" in w for w in words):
        pairs: list[tuple[Resource, str | None]] = []
        for w in words:
            kind, _, name = w.partition("/")
            if not name:
                raise CommandError(f"error: arguments in resource/name form must have a "
                                   f"single resource and name: {w!r}")
            pairs.append((resolve_kind(kind), name))
        return pairs
    if any("/" in w for w in words):
        raise CommandError("error: there is no need to specify a resource type as a separate "
                           "argument when passing arguments in resource/name form (e.g. "
                           "'podnet get resource/<resource_name>' instead of 'podnet get "
                           "resource resource/<resource_name>'")
    res = resolve_kind(words[0])
    if len(words) == 1:
        return [(res, None)]
    return [(res, name) for name in words[1:]]


# -- lifecycle commands -----------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    nodes = args.nodes
    new = not _state(args).exists()
    if nodes is None and new:
        nodes = topology.DEFAULT_NODES  # a new cluster; an existing one keeps its nodes
    dns = False if args.no_dns else (True if new else None)  # likewise its cluster DNS
    ingress = False if args.no_ingress else (True if new else None)  # and its ingress
    lifecycle.up(args.name, wait=args.timeout, port=args.port, nodes=nodes,
                 backend=args.backend, lan_cidr=args.lan_cidr, cni=args.cni,
                 lb_pool=args.lb_pool, dns=dns, dns_upstreams=args.dns_upstream,
                 dns_pod_records="disabled" if args.no_pod_records else None,
                 ingress=ingress)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    lifecycle.down(args.name)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return 0 if lifecycle.status(args.name) else 1


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    state = _state(args)
    if not state.kubeconfig.is_file():
        raise StateError(f'cluster "{state.name}" does not exist ({state.dir})')
    print(state.kubeconfig)
    return 0


# -- exec -------------------------------------------------------------------------------------


def machine_netns(cluster: str, target: str) -> str | None:
    """The namespace of a lab machine named as `node/NAME` or `external`; None when `target`
    names no machine (a pod, for instance)."""
    if target == topology.EXTERNAL:
        return lab_names.external_netns(cluster)
    kind, sep, name = target.partition("/")
    if not sep or kind not in ("node", "nodes", "no"):
        return None
    if not re.fullmatch(r"node-[1-9][0-9]*", name):  # lab_names.node_name's names only
        raise CommandError(f'Error from server (NotFound): nodes "{name}" not found')
    return lab_names.node_netns(cluster, name)


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.argv:
        raise CommandError("error: you must specify at least one command for the container "
                           "(podnet exec TARGET -- COMMAND [args...])")
    ns = machine_netns(_state(args).name, args.target)
    if ns is None:
        return exec_pod(args)
    if not netns.exists(ns):
        what = "external host" if args.target == topology.EXTERNAL else \
            f'node "{args.target.partition("/")[2]}"'
        raise CommandError(f"error: the {what} of cluster \"{_state(args).name}\" does not "
                           f"exist (namespace {ns})")
    sys.stdout.flush()
    sys.stderr.flush()
    rc = subprocess.run(netns.exec_argv(ns, args.argv)).returncode
    return rc if rc >= 0 else 128 - rc


def exec_pod(args: argparse.Namespace) -> int:
    """`podnet exec [-n NS] POD [-c C] -- CMD`: run CMD in the pod's namespaces."""
    from podnet.cli import pods

    name = args.target.removeprefix("pod/").removeprefix("pods/")
    try:
        return pods.exec_in_pod(_state(args), _namespace(args), name, args.container,
                                args.argv)
    except pods.PodError as e:
        raise CommandError(str(e)) from e


def cmd_logs(args: argparse.Namespace) -> int:
    from podnet.cli import pods

    name = args.pod.removeprefix("pod/").removeprefix("pods/")
    try:
        return pods.logs(_state(args), _namespace(args), name, args.container,
                         follow=args.follow, tail=args.tail)
    except pods.PodError as e:
        raise CommandError(str(e)) from e


def _split_exec(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """An `exec` command line split at its `--`: (the podnet part, the command)."""
    if "--" in argv:
        i = argv.index("--")
        if "exec" in argv[:i]:
            return argv[:i], argv[i + 1:]
    return argv, None


# -- apply ------------------------------------------------------------------------------------


def cmd_apply(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.filename)
    if not manifests:
        raise CommandError("error: no objects passed to apply")
    with _client(args) as client:
        return apply_manifests(client, manifests, _namespace(args), bool(args.namespace),
                               sys.stdout, sys.stderr)


# -- get --------------------------------------------------------------------------------------


def _print_objects(objs: list[dict[str, Any]], res: Resource, fmt: str, single: bool,
                   out: TextIO) -> None:
    typed = [output.with_type(res, o) for o in objs]
    doc: Any = typed[0] if single and len(typed) == 1 else output.as_list(typed)
    out.write(output.to_yaml(doc) if fmt == "yaml" else output.to_json(doc))


def _get_named(client: Client, res: Resource, ns: str | None, names: list[str], fmt: str,
               errors: list[str]) -> list[dict[str, Any]]:
    """One response per name that exists (a Table or the object); errors collected."""
    found = []
    for name in names:
        try:
            if fmt in ("", "wide"):
                found.append(client.table(res, ns, name))
            else:
                found.append(client.get(res, ns, name))
        except ApiError as e:
            errors.append(e.kubectl_message())
    return found


def _as_table(answers: list[dict[str, Any]]) -> dict[str, Any]:
    tables = [a for a in answers if a.get("kind") == "Table"]
    objects = [a for a in answers if a.get("kind") != "Table"]
    for a in list(objects):  # a List from a server that cannot make Tables
        if isinstance(a.get("items"), list):
            objects.remove(a)
            objects.extend(a["items"])
    merged = output.merge_tables(tables)
    if objects:
        fallback = output.fallback_table(objects)
        if not merged["columnDefinitions"]:
            merged["columnDefinitions"] = fallback["columnDefinitions"]
        merged["rows"].extend(fallback["rows"])
    return merged


def cmd_get(args: argparse.Namespace) -> int:
    pairs = split_kind_names([args.kind, *args.names])
    res = pairs[0][0]
    if any(r != res for r, _ in pairs):
        raise CommandError("error: podnet get shows one kind at a time")
    names = [n for _, n in pairs if n is not None]
    if names and args.all_namespaces:
        raise CommandError("error: a resource cannot be retrieved by name across all namespaces")
    ns = None if (args.all_namespaces or not res.namespaced) else _namespace(args)
    fmt = args.output or ""
    errors: list[str] = []
    with _client(args) as client:
        if names:
            answers = _get_named(client, res, ns, names, fmt, errors)
        elif fmt in ("", "wide"):
            answers = [client.table(res, ns, label_selector=args.selector,
                                    field_selector=args.field_selector)]
        else:
            answers = [client.list(res, ns, label_selector=args.selector,
                                   field_selector=args.field_selector)]
    printed = _print_get(args, res, fmt, names, answers)
    if not printed and not names and not errors:
        if ns is not None:
            _err(f"No resources found in {ns} namespace.")
        else:
            _err("No resources found")
    for e in errors:
        _err(e)
    return 1 if errors else 0


def _print_get(args: argparse.Namespace, res: Resource, fmt: str, names: list[str],
               answers: list[dict[str, Any]]) -> bool:
    """Print what `get` fetched; False when there was nothing to print."""
    if fmt in ("", "wide"):
        text = output.format_table(
            _as_table(answers), wide=fmt == "wide",
            with_namespace=bool(args.all_namespaces and res.namespaced),
            show_labels=args.show_labels, headers=not args.no_headers)
        sys.stdout.write(text)
        return bool(text)
    objs = [o for a in answers for o in (a.get("items") or [] if "items" in a else [a])]
    if fmt == "name":
        for o in objs:
            print(output.object_ref(res, str((o.get("metadata") or {}).get("name", ""))))
        return bool(objs)
    if names and not objs:
        return False
    _print_objects(objs, res, fmt, single=len(names) == 1, out=sys.stdout)
    return True


# -- delete -----------------------------------------------------------------------------------


def _delete_targets(args: argparse.Namespace) -> tuple[list[tuple[Target, str | None]], bool]:
    """(target, source file or None) pairs to delete, and whether reading them failed."""
    targets: list[tuple[Target, str | None]] = []
    failed = False
    if args.filename:
        for m in load_manifests(args.filename):
            try:
                if m.doc is None:
                    raise ManifestError(m.error or f"error: cannot read {m.source}")
                targets.append((doc_target(m.doc, m.source, _namespace(args),
                                           bool(args.namespace)), m.source))
            except ManifestError as e:
                _err(str(e))
                failed = True
        # Namespaces last: deleting one first would race its own contents.
        targets.sort(key=lambda t: t[0].res.kind == "Namespace")
        return targets, failed
    for res, name in split_kind_names(args.args):
        if name is None:
            raise CommandError("error: resource(s) were provided, but no name was specified")
        ns = _namespace(args) if res.namespaced else None
        targets.append((Target(res, ns, name), None))
    return targets, failed


def _wait_deleted(client: Client, target: Target, uid: str | None, deadline: float) -> bool:
    delay = 0.02
    while True:
        try:
            live = client.get(target.res, target.namespace, target.name)
        except ApiError as e:
            if e.status == 404:
                return True
            raise
        if uid and (live.get("metadata") or {}).get("uid") != uid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def cmd_delete(args: argparse.Namespace) -> int:
    if bool(args.filename) == bool(args.args):
        raise CommandError("error: you must provide either -f FILE or KIND NAME... (not both)")
    targets, failed = _delete_targets(args)
    deleted = []
    with _client(args) as client:
        for target, source in targets:
            try:
                answer = client.delete(target.res, target.namespace, target.name)
            except ApiError as e:
                if e.status == 404 and args.ignore_not_found:
                    continue
                failed = True
                if source is None:
                    _err(e.kubectl_message())
                else:
                    _err(f"Error from server ({e.reason}): error when deleting \"{source}\": "
                         f"{e.message}")
                continue
            print(f'{output.kind_ref(target.res)} "{target.name}" deleted', flush=True)
            uid = (answer.get("metadata") or {}).get("uid") if answer.get("kind") != "Status" \
                else None
            deleted.append((target, uid))
        if args.wait:
            deadline = time.monotonic() + args.timeout
            for target, uid in deleted:
                if not _wait_deleted(client, target, uid, deadline):
                    failed = True
                    _err(f"error: timed out waiting for the condition on "
                         f"{target.res.plural}/{target.name}")
    return 1 if failed else 0


# -- the parser -------------------------------------------------------------------------------


def _common(default: Any) -> argparse.ArgumentParser:
    """--name and -n, accepted before and after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--name", default=default, metavar="N",
                   help="cluster name (default: $PODNET_CLUSTER or podnet)")
    p.add_argument("-n", "--namespace", default=default, metavar="NS",
                   help="namespace (default: default)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podnet", parents=[_common(None)],
        description="The Kubernetes network model on Linux: a cluster on this machine.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common(argparse.SUPPRESS)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_, description=help_)

    p = add("up", "create the cluster if needed and start it")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the API server, the nodes and the cluster DNS "
                        "to be ready (default 30)")
    p.add_argument("--port", type=int, metavar="PORT",
                   help="API port of a new cluster (default 6443 if free, else any free port)")
    p.add_argument("--nodes", type=int, metavar="N",
                   help=f"nodes of a new cluster (default {topology.DEFAULT_NODES}; 0: the "
                        "control plane alone)")
    p.add_argument("--backend", choices=topology.BACKENDS,
                   help=f"routing between nodes of a new cluster (default "
                        f"{topology.DEFAULT_BACKEND})")
    p.add_argument("--cni", choices=CNI_PLUGINS,
                   help=f"the CNI plugin of a new cluster's nodes: podnet-cni, or Debian's ptp + "
                        f"host-local (default {DEFAULT_CNI})")
    p.add_argument("--lan-cidr", metavar="CIDR",
                   help=f"the LAN of a new cluster (default {topology.DEFAULT_LAN_CIDR})")
    p.add_argument("--lb-pool", metavar="POOL",
                   help="the LoadBalancer addresses of a new cluster: CIDRs and A-B ranges, "
                        "comma-separated, inside the LAN (default: LAN offsets "
                        f"{topology.LB_POOL_OFFSETS[0]}-{topology.LB_POOL_OFFSETS[1]}, "
                        "172.18.0.200-172.18.0.249 on the default LAN)")
    p.add_argument("--no-dns", action="store_true",
                   help="a new cluster without the cluster DNS (kube-system/kube-dns)")
    p.add_argument("--dns-upstream", action="append", metavar="IP[:PORT]",
                   help="a resolver the cluster DNS of a new cluster forwards names outside "
                        "cluster.local to; repeatable (default: the nameservers of the "
                        "node's /etc/resolv.conf)")
    p.add_argument("--no-pod-records", action="store_true",
                   help="a new cluster's DNS answers no a-b-c-d.<ns>.pod.cluster.local names "
                        "(default: answered, as kubeadm's CoreDNS does: pods insecure)")
    p.add_argument("--no-ingress", action="store_true",
                   help="a new cluster without the ingress (HAProxy in ingress-podnet, "
                        "IngressClass podnet)")
    p.set_defaults(func=cmd_up)
    add("down", "stop the cluster and remove its state").set_defaults(func=cmd_down)
    add("status", "show the cluster and its components").set_defaults(func=cmd_status)
    add("kubeconfig", "print the path of the cluster's kubeconfig").set_defaults(
        func=cmd_kubeconfig)
    add("server", "run the API server (used by `up`; must be the first argument)").set_defaults(
        func=_server_not_first)
    add("agent", "run a node agent (used by `up`; must be the first argument)").set_defaults(
        func=_server_not_first)

    p = add("exec", "run a command in a pod, or in a machine of the lab: node/NAME or "
                    "external")
    p.add_argument("target", metavar="TARGET", help="POD, node/NAME or external")
    p.add_argument("-c", "--container", metavar="C", help="(pods) the container")
    p.set_defaults(func=cmd_exec, argv=[])

    p = add("logs", "print a container's logs")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container", metavar="C")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, default=-1, metavar="N")
    p.set_defaults(func=cmd_logs)

    p = add("apply", "create or update objects from manifests")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="a file, a directory of *.yaml/*.yml/*.json, or - for stdin")
    p.set_defaults(func=cmd_apply)

    p = add("get", "show objects")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=OUTPUT_FORMATS)
    p.add_argument("-l", "--selector", metavar="SELECTOR")
    p.add_argument("--field-selector", metavar="SELECTOR")
    p.add_argument("--show-labels", action="store_true")
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(func=cmd_get)

    p = add("delete", "delete objects and wait until they are gone")
    p.add_argument("args", nargs="*", metavar="KIND NAME")
    p.add_argument("-f", "--filename", action="append", metavar="FILE")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait until the objects are gone (default)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    p.set_defaults(func=cmd_delete)

    p = add("policy", "NetworkPolicy: who can reach whom, and why (matrix, explain)")
    policy.add_commands(p, common)
    return parser


def _server_not_first(args: argparse.Namespace) -> int:
    raise CommandError(f"error: use `podnet {args.command} --state-dir DIR ...` "
                       f"({args.command} comes first)")


def _run_server(argv: list[str]) -> int:
    try:
        from podnet.server.main import main as server_main
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("podnet.server"):
            raise
        _err("error: this podnet has no API server (podnet.server.main is missing)")
        return 1
    return server_main(argv)


def _run_agent(argv: list[str]) -> int:
    try:
        from podnet.agent.main import main as agent_main
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("podnet.agent"):
            raise
        _err("error: this podnet has no node agent (podnet.agent.main is missing)")
        return 1
    return int(agent_main(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["server"]:
        return _run_server(argv[1:])
    if argv[:1] == ["agent"]:
        return _run_agent(argv[1:])
    head, command = _split_exec(argv)
    args = build_parser().parse_args(head)
    if args.command == "exec":
        args.argv = command or []
    elif command is not None:
        args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as e:
        _err(str(e))
    except ApiError as e:
        _err(e.kubectl_message())
    except ClientError as e:
        _err(str(e))
    except (StateError, ClusterError) as e:
        _err(f"error: {e}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `podnet get pods | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
