"""The agent's NetworkPolicy loop: Pods, Namespaces and NetworkPolicies in, the node's `pol-`
objects out (shell).

    watch handlers ──index, wake──▶ loop: coalesce, compile_model (every pod of the cluster:
    on_pod / on_namespace /                peers live on every node), node_rules(this node),
    on_policy                              incremental(applied, new) ──▶ nft.apply, one
                                           transaction, under the table's lock (a change
                                           above FULL_ABOVE: the proxy's full sync instead)
    runtime ──admit(pod, ips)──▶ the pod's IP joins the view at once; returns once applied
    proxier full sync ──full_body()──▶ the current desired objects, in the proxy's transaction

Watch handlers never touch the kernel: they index the object, count a generation when what
policy sees changed, and wake the loop. The loop recompiles the model from the caches
(compile_model is a pure function of the three sets; model.Compiler remembers what each
unchanged policy contributed while pods and namespaces stay the same, and only the pods whose
compiled policy changed are rendered again) and applies the difference between what it last
applied, kept in memory, and the new NodeRules; the table is never read back.

The `pol-` objects live in the service proxy's table, whose full sync deletes the table first.
So this loop never creates the table: the proxy's first full sync carries the policy objects
too (`full_body`, then `full_applied` / `full_failed`), and so does every full sync after a
failure, ours included (`request_full` asks the proxy for one). Until such a sync has landed
the loop applies nothing. All applies hold one asyncio.Lock shared with the proxy, so no two
transactions on the table interleave.

`admit(pod, ips)` is the runtime's hook between CNI ADD and the first container: the API has
no status.podIP for the pod yet, so its IP is put into the view here, and the call returns
once a transaction holding it (the pod isolated, the peer sets that select it grown) is in the
kernel. A new pod is never running unisolated.

After each successful apply `<node dir>/policy-sync.json` says what the kernel holds: the
highest resourceVersion of the objects it was compiled from, counts, and how long it took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podnet import daemon
from podnet.policy import model, render
from podnet.proxy import nft
from podnet.proxy.render import Table

log = logging.getLogger("podnet.policy")

Obj = dict[str, Any]
COALESCE = 0.002  # seconds the loop waits for more changes after the first (a burst also
# gathers while a sync runs: the 1,000 creates of the benchmark took 6-8 syncs)
RETRY = 1.0
ADMIT_TIMEOUT = 60.0
STATUS_FILE = "policy-sync.json"
EMPTY = render.NodeRules({}, {})
# A change whose script is longer than this is not applied as element diffs: the loop asks the
# proxy for a full sync, the whole table (its objects and ours) in one transaction. nft takes
# about 0.2 ms per element added or deleted in a set that holds others, and 0.02 ms per element
# loading a table whole: offline, 0.89 MB of diffs (10,435 elements) took 2.0-2.2 s where
# loading all 27,954 took 0.4-0.5 s, and a live agent's full sync with 1,000 policies over 300
# pods takes about 1 s (bench/README.md). At 512 KB the two cost about the same.
FULL_ABOVE = 512 * 1024  # bytes of script
FULL_ABOVE_ENV = "PODNET_POLICY_FULL_ABOVE"  # overrides it (tests set it low)


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _full_above() -> int:
    raw = os.environ.get(FULL_ABOVE_ENV)
    if raw is None:
        return FULL_ABOVE
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
    except ValueError:
        log.warning("%s=%r is not a number of bytes >= 0; using %d", FULL_ABOVE_ENV, raw,
                    FULL_ABOVE)
        return FULL_ABOVE
    return value


def _uid(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


@dataclasses.dataclass(frozen=True)
class Compiled:
    """One compilation: the rules for this node and what they were compiled from."""

    gen: int  # the enforcer's change count when it was compiled
    rv: int  # the highest resourceVersion seen by then
    rules: render.NodeRules
    pods: int
    policies: int
    isolated: tuple[int, int]  # pods of this node isolated for ingress, for egress
    compile_ms: float


class Enforcer:
    def __init__(self, ns: str, table: Table, node: str, *, lock: asyncio.Lock | None = None,
                 status_dir: Path | None = None,
                 request_full: Callable[[], None] | None = None) -> None:
        self.ns = ns
        self.table = table
        self.node = node
        self.lock = lock or asyncio.Lock()
        self.status_path = status_dir / STATUS_FILE if status_dir is not None else None
        self.request_full = request_full  # asks the proxy for a full sync of the table
        self.full_above = _full_above()
        self.pods: dict[str, model.Pod] = {}  # uid -> pod, as the API has it
        self.admitted: dict[str, model.Pod] = {}  # uid -> pod with the IP the runtime gave it
        self.namespaces: dict[str, dict[str, str]] = {}  # name -> labels
        self.policies: dict[str, Obj] = {}  # uid -> NetworkPolicy
        self.gen = 0  # counts changes to what policy sees
        self.seen_rv = 0  # the highest resourceVersion of any object handled
        self.wake = asyncio.Event()
        self.applied: render.NodeRules | None = None  # None: the table holds nothing of ours
        self.applied_gen = -1
        self.applied_rv = -1  # written to the status file
        self.full_pending = True  # the table awaits a full sync; the loop applies nothing
        self.pending: Compiled | None = None  # what the proxy's full sync in flight carries
        self.first_full = asyncio.Event()
        self.progress = asyncio.Event()  # set (and replaced) whenever applied_gen advances
        self.syncs = 0
        self.last: Compiled | None = None
        self.last_took = 0.0  # ms, compile and apply of the last change
        # the pods rendered last (this node's, owning their IPs) and their rules
        self.rendered: tuple[dict[str, model.PodPolicy], render.NodeRules] = ({}, EMPTY)
        # compile_model with memory: a policy that did not change is not compiled again while
        # the pods and namespaces stay the same
        self.compiler = model.Compiler()

    # -- watch handlers: index and wake, nothing else --------------------------------------------

    def on_pod(self, kind: str, obj: Obj) -> None:
        uid = _uid(obj)
        pod = None if kind == "DELETED" else model.pod_from_api(obj)
        old = self.pods.pop(uid, None)
        admitted = self.admitted.get(uid)
        if pod is not None:
            self.pods[uid] = pod
            if admitted is not None and admitted.ip == pod.ip:
                del self.admitted[uid]  # the API caught up
                admitted = None
        elif admitted is not None:  # deleted, or finished: its IP goes back to the pool
            del self.admitted[uid]
        self._note(_rv(obj), changed=old != pod or (pod is None and admitted is not None))

    def on_namespace(self, kind: str, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        labels = dict((obj.get("metadata") or {}).get("labels") or {})
        old = self.namespaces.pop(name, None)
        if kind != "DELETED":
            self.namespaces[name] = labels
        self._note(_rv(obj), changed=old != (labels if kind != "DELETED" else None))

    def on_policy(self, kind: str, obj: Obj) -> None:
        uid = _uid(obj)
        old = self.policies.pop(uid, None)
        if kind != "DELETED":
            self.policies[uid] = obj
        changed = old is None or kind == "DELETED" or old.get("spec") != obj.get("spec") or \
            (old.get("metadata") or {}).get("name") != (obj.get("metadata") or {}).get("name")
        self._note(_rv(obj), changed=changed)

    def _note(self, rv: int, *, changed: bool) -> None:
        self.seen_rv = max(self.seen_rv, rv)
        if changed:
            self.gen += 1
        self.wake.set()

    # -- the runtime's hook ----------------------------------------------------------------------

    async def admit(self, pod: Obj, ips: list[str]) -> None:
        """The pod `pod` (bound to this node) got `ips` from CNI ADD and none of its containers
        runs yet: return once the kernel enforces policy for it with that IP."""
        ip = next((i for i in ips if ":" not in i), None)
        slim = model.pod_from_api(pod)
        if ip is None or slim is None:
            return  # no IPv4 address, or host network: policy does not see it
        uid = _uid(pod)
        started = time.monotonic()
        self.admitted[uid] = dataclasses.replace(slim, ip=model.ip_to_int(ip), node=self.node)
        self.gen += 1
        gen = self.gen
        self.wake.set()
        try:
            await asyncio.wait_for(self._applied(gen), ADMIT_TIMEOUT)
        except BaseException:
            # Not admitted: the runtime discards the sandbox and frees the IP; forget it.
            if self.admitted.pop(uid, None) is not None:
                self._note(0, changed=True)
            raise
        log.info("policy: %s (%s) admitted in %.1f ms", slim.key, ip,
                 (time.monotonic() - started) * 1000)

    async def _applied(self, gen: int) -> None:
        await self.first_full.wait()
        while self.applied_gen < gen:
            await self.progress.wait()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync forever, after the proxy's first full sync (which carries our objects)."""
        await self.first_full.wait()
        while True:
            await self.wake.wait()
            await asyncio.sleep(COALESCE)
            self.wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("policy sync failed; the next full sync replaces the table")
                self._need_full()
                await asyncio.sleep(RETRY)
                self.wake.set()

    async def sync(self) -> None:
        """Apply what changed since the last apply (nothing while a full sync is awaited)."""
        if self.full_pending:
            return  # full_applied() wakes the loop again
        if self.gen == self.applied_gen:
            if self.seen_rv > self.applied_rv:  # changes that policy does not see
                self.applied_rv = self.seen_rv
                self._write_status()
            return
        started = time.monotonic()
        new = self.compile()
        t_lock = time.monotonic()
        async with self.lock:
            if self.full_pending or self.applied_gen >= new.gen:
                return  # a full sync came first, and carried this state or a newer one
            t_render = time.monotonic()
            script = render.incremental(self.table, self.applied or EMPTY, new.rules)
            if len(script) > self.full_above and self.request_full is not None:
                log.info("policy: a change of %d bytes of element diffs goes into the proxy's "
                         "full sync instead (one whole table)", len(script))
                self._need_full()  # full_applied() records it as applied
                return
            t_nft = time.monotonic()
            if script:
                await nft.apply(self.ns, script)
            t_done = time.monotonic()
            self._done(new)
        self.syncs += 1
        daemon.settle_heap()
        took = self.last_took = (time.monotonic() - started) * 1000
        self._write_status()
        log.info("policy: %d policies over %d pods compiled in %.1f ms, applied in %.1f ms "
                 "(lock wait %.1f, render %.1f, nft %.1f of which libnftables %.1f, "
                 "%d bytes)", new.policies, new.pods, new.compile_ms, took - new.compile_ms,
                 (t_render - t_lock) * 1000, (t_nft - t_render) * 1000,
                 (t_done - t_nft) * 1000, nft.library_ms(self.ns) if script else 0.0,
                 len(script))

    def compile(self) -> Compiled:
        """The current desired state of this node's policy objects."""
        started = time.monotonic()
        gen, rv = self.gen, self.seen_rv
        compiled = self.compiler.compile(self.view(), self.namespaces, self.policies.values())
        rules = self.node_rules(compiled)
        mine = [p for p in compiled.pods.values() if p.pod.node == self.node]
        isolated = (sum(1 for p in mine if p.ingress_isolated_by),
                    sum(1 for p in mine if p.egress_isolated_by))
        return Compiled(gen, rv, rules, len(compiled.pods), len(self.policies), isolated,
                        (time.monotonic() - started) * 1000)

    def node_rules(self, compiled: model.PolicyModel) -> render.NodeRules:
        """render.node_rules(compiled, this node), rendering again only the pods whose compiled
        policy changed since the last call. Turning grants into disjoint sets is the costly
        part, and a pod's sets depend only on its own PodPolicy and on its owning its IP."""
        mine: dict[str, model.PodPolicy] = {}
        changed: dict[str, model.PodPolicy] = {}
        ingress: dict[int, render.PodSets] = {}
        egress: dict[int, render.PodSets] = {}
        before, rules = self.rendered
        for key, p in compiled.pods.items():
            ip = p.pod.ip
            if p.pod.node != self.node or ip is None or compiled.by_ip.get(ip, key) != key:
                continue
            mine[key] = p
            if before.get(key) != p:
                changed[key] = p
                continue
            if ip in rules.ingress:
                ingress[ip] = rules.ingress[ip]
            if ip in rules.egress:
                egress[ip] = rules.egress[ip]
        fresh = render.node_rules(model.PolicyModel(changed, compiled.by_ip), self.node)
        ingress.update(fresh.ingress)
        egress.update(fresh.egress)
        new = render.NodeRules(dict(sorted(ingress.items())), dict(sorted(egress.items())))
        self.rendered = (mine, new)
        return new

    def view(self) -> list[model.Pod]:
        """The pods as the API has them, with the IPs the runtime admitted that the API does
        not show yet."""
        pods = dict(self.pods)
        for uid, admitted in self.admitted.items():
            known = pods.get(uid)
            pods[uid] = admitted if known is None else dataclasses.replace(known, ip=admitted.ip)
        return list(pods.values())

    def _done(self, new: Compiled) -> None:
        self.applied, self.applied_gen, self.applied_rv = new.rules, new.gen, new.rv
        self.last = new
        progress, self.progress = self.progress, asyncio.Event()
        progress.set()

    def _need_full(self) -> None:
        self.full_pending = True
        if self.request_full is not None:
            self.request_full()

    # -- the proxy's full sync (a Section of podnet.proxy.proxier) -------------------------------

    def full_body(self) -> str:
        """Our objects as they should be now, for the proxy's full sync script (which deleted
        the table first); remembered as applied if that script is."""
        started = time.monotonic()
        self.pending = self.compile()
        body = render.full_body(self.table, self.pending.rules)
        log.debug("policy: full body rendered in %.1f ms", (time.monotonic() - started) * 1000)
        return body

    def full_applied(self, took_ms: float) -> None:
        new, self.pending = self.pending, None
        if new is None:
            return
        self.full_pending = False
        self._done(new)
        self.syncs += 1
        self.last_took = took_ms  # the whole transaction, the proxy's part included
        self._write_status()
        self.first_full.set()
        self.wake.set()  # changes that came during the full sync, if any

    def full_failed(self) -> None:
        self.pending = None  # the proxy retries the full sync; we wait for it

    # -- status ----------------------------------------------------------------------------------

    def status(self) -> Obj:
        """What the kernel holds: compiled from objects up to `resourceVersion`."""
        last = self.last
        if last is None:
            return {"resourceVersion": 0, "pods": 0, "policies": 0,
                    "isolated": {"ingress": 0, "egress": 0}, "took_ms": 0.0, "syncs": 0}
        return {"resourceVersion": self.applied_rv, "pods": last.pods,
                "policies": last.policies,
                "isolated": {"ingress": last.isolated[0], "egress": last.isolated[1]},
                "took_ms": round(self.last_took, 2), "syncs": self.syncs}

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        tmp = self.status_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.status()))
            os.replace(tmp, self.status_path)
        except OSError as e:
            log.warning("policy: cannot write %s: %s", self.status_path, e)
