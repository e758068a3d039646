"""The runtime side of CNI: what a container runtime (containerd, CRI-O, through libcni) does
with a configuration list, for the node agent. It drives any CNI plugins, not only podnet-cni.

- The network is the first `*.conflist` (sorted by name) in conf_dir, re-read when it changes.
- The cniVersion used is negotiated once per configuration: `cniVersions` + `cniVersion`
  against what every plugin (and every delegated IPAM plugin found in bin_dirs) answers to
  VERSION (spec.negotiate_version). So a 1.1.0 list still drives plugins that stop at 1.0.0.
- ADD runs the plugins in order, each getting the previous result as prevResult, and caches
  the final result (with the configuration, netns and args) under cache_dir/results/. A failed
  ADD is followed by a DEL of the plugins that ran (the spec wants a delete after a failed add;
  containerd does the same), so nothing leaks, and the error is raised.
- DEL runs the plugins in reverse order with the cached result as prevResult, from the cached
  configuration when there is one (so a node whose conflist changed still deletes with the
  plugins that added), then drops the cache. It is idempotent.
- CHECK runs the plugins in order with the cached result (unless disableCheck).
- STATUS runs STATUS on each plugin when the version is 1.1.0 or later; a plugin that answers
  as a plugin older than the verb does (code 4 "unknown CNI_COMMAND", or 3 "missing
  containerID") counts as ready, as does a list whose version is older than 1.1.0 (libcni
  skips STATUS then).
- GC issues DEL for every cached attachment of the network that is not in the valid list, then
  (1.1.0+) GC on each plugin with cni.dev/valid-attachments (and cni.dev/attachments, the older
  spelling, as libcni sends both). GC is exclusive with ADD and DEL, and operations on one
  attachment are serialized, as the spec requires of a runtime.

Plugins run inside `host_netns` (via nsenter), the namespace they treat as "the host".
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from podnet.cni import spec
from podnet.cni.spec import (
    ATTACHMENTS_OLD,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INTERFACE_EXISTS,
    ERR_INTERNAL,
    ERR_INVALID_CONFIG,
    ERR_INVALID_ENV,
    ERR_IO,
    ERR_NOT_AVAILABLE,
    ERR_UNKNOWN_CONTAINER,
    LATEST,
    VALID_ATTACHMENTS,
    CniError,
    NetworkConfigList,
)

__all__ = ["CniError", "CniRuntime"]

log = logging.getLogger("podnet.cni")
Obj = dict[str, Any]
CACHE_KIND = "podnetCniCacheV1"
BUILTIN_IPAM = {"podnet-cni": "podnet"}  # plugin type -> its in-process IPAM type
# What a plugin built before spec 1.1 answers to STATUS or GC: "unknown CNI_COMMAND" (4), or,
# since those verbs carry no container ID, "missing containerID" (3) (Debian's 1.1.1 plugins).
PREDATES_VERB = (ERR_UNKNOWN_CONTAINER, ERR_INVALID_ENV)


class _Gate:
    """Many ADD/DEL/CHECK at once, or one GC alone (writer-preferring)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            async with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._cond:
            self._writers_waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._writer and not self._readers)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            async with self._cond:
                self._writer = False
                self._cond.notify_all()


class _KeyLocks:
    """One asyncio.Lock per attachment, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class CniRuntime:
    """Drive the plugins of a node's CNI configuration list (see the module docstring)."""

    def __init__(self, conf_dir: Path, bin_dirs: list[Path], cache_dir: Path, *,
                 host_netns: str | None, timeout: float = 60.0) -> None:
        self.conf_dir = Path(conf_dir)
        self.bin_dirs = [Path(d) for d in bin_dirs]
        self.cache_dir = Path(cache_dir)
        self.host_netns = host_netns
        self.timeout = timeout
        self._conf: NetworkConfigList | None = None
        self._conf_key: tuple[str, int] | None = None
        self._version_info: dict[tuple[str, int], list[str]] = {}
        self._negotiated: dict[str, str] = {}
        self._gate = _Gate()
        self._locks = _KeyLocks()

    # -- configuration ---------------------------------------------------------------------
    def conflist_path(self) -> Path | None:
        try:
            found = sorted(p for p in self.conf_dir.iterdir()
                           if p.suffix == ".conflist" and p.is_file())
        except FileNotFoundError:
            return None
        return found[0] if found else None

    def load(self) -> NetworkConfigList:
        """The current configuration list (re-read when the file or its mtime changed)."""
        path = self.conflist_path()
        if path is None:
            raise CniError(ERR_NOT_AVAILABLE, f"no network configuration: no *.conflist in "
                           f"{self.conf_dir}")
        try:
            key = (str(path), path.stat().st_mtime_ns)
            if self._conf is not None and key == self._conf_key:
                return self._conf
            text = path.read_text()
        except OSError as e:
            raise CniError(ERR_IO, f"cannot read {path}: {e.strerror}") from None
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise CniError(spec.ERR_DECODE, f"{path}: invalid JSON: {e}") from None
        try:
            conf = spec.parse_conflist(obj)
        except CniError as e:
            raise CniError(e.code, f"{path}: {e.msg}", e.details) from None
        self._conf, self._conf_key = conf, key
        return conf

    def find_plugin(self, plugin_type: str) -> Path:
        spec.validate_plugin_type(plugin_type, "type")
        for d in self.bin_dirs:
            path = d / plugin_type
            if path.is_file() and os.access(path, os.X_OK):
                return path
        raise CniError(ERR_INVALID_CONFIG, f"plugin {plugin_type!r} not found in "
                       f"{', '.join(map(str, self.bin_dirs)) or 'no directory'}")

    async def _supported(self, path: Path) -> list[str]:
        st = path.stat()
        key = (str(path), st.st_mtime_ns)
        if key not in self._version_info:
            obj = await self._run(path, path.name, "VERSION", {"cniVersion": LATEST})
            self._version_info[key] = spec.supported_versions(obj)
        return self._version_info[key]

    async def negotiated_version(self, conf: NetworkConfigList | None = None) -> str:
        """The cniVersion this runtime uses with `conf` (default: the current list)."""
        conf = conf or self.load()
        binaries: dict[str, Path] = {}  # who must support the version -> its executable
        for p in conf.plugins:
            ptype = str(p["type"])
            binaries[ptype] = self.find_plugin(ptype)
            ipam = p.get("ipam")
            itype = ipam.get("type") if isinstance(ipam, dict) else None
            if not isinstance(itype, str) or BUILTIN_IPAM.get(ptype) == itype:
                continue
            try:  # a delegated IPAM plugin gets the same cniVersion: it must support it too
                binaries[f"{ptype}/ipam {itype}"] = self.find_plugin(itype)
            except CniError as e:
                log.debug("not negotiating with IPAM %s of %s: %s", itype, ptype, e.msg)
        key = json.dumps([conf.raw, [(str(b), b.stat().st_mtime_ns)
                                     for b in binaries.values()]], sort_keys=True)
        if key not in self._negotiated:
            plugins = {who: await self._supported(path) for who, path in binaries.items()}
            self._negotiated[key] = spec.negotiate_version(conf.cni_version, conf.cni_versions,
                                                           plugins)
        return self._negotiated[key]

    # -- running plugins -------------------------------------------------------------------
    def _argv(self, path: Path) -> list[str]:
        if self.host_netns is None:
            return [str(path)]
        netns = self.host_netns if "/" in self.host_netns else f"/run/netns/{self.host_netns}"
        return ["nsenter", f"--net={netns}", "--", str(path)]

    async def _run(self, path: Path, plugin_type: str, command: str, conf: Obj, *,
                   container_id: str = "", netns: str = "", ifname: str = "",
                   args: str = "") -> Any:
        """Run one plugin; its decoded stdout (None when empty), or raise its CniError."""
        env = spec.cni_env(command, container_id=container_id, netns=netns, ifname=ifname,
                           args=args, path=[str(d) for d in self.bin_dirs], base=os.environ)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(path), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        except OSError as e:
            raise CniError(ERR_IO, f"cannot run plugin {plugin_type} ({path}): "
                           f"{e.strerror}") from None
        try:
            out, err = await asyncio.wait_for(_talk(proc, json.dumps(conf).encode()),
                                              self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise CniError(spec.ERR_TRY_AGAIN_LATER, f"plugin {plugin_type} ({command}) did "
                           f"not finish within {self.timeout:g}s") from None
        stderr = err.decode(errors="replace")
        if stderr.strip():
            log.debug("plugin %s (%s) stderr: %s", plugin_type, command, stderr.strip())
        text = out.decode(errors="replace").strip()
        obj: Any = None
        if text:
            try:
                obj = json.loads(text)
            except ValueError as e:
                if proc.returncode == 0:
                    raise CniError(spec.ERR_DECODE, f"plugin {plugin_type} ({command}): "
                                   f"cannot decode its output: {e}", text[:2000]) from None
        if proc.returncode != 0:
            error = spec.error_from_output(obj, plugin=plugin_type, stderr=stderr or text)
            raise CniError(error.code, f"plugin {plugin_type} failed ({command}): {error.msg}",
                           error.details)
        return obj

    async def _plugin(self, conf: NetworkConfigList, version: str, plugin: Obj, command: str,
                      *, prev: Obj | None = None, extra: Mapping[str, Any] | None = None,
                      attachment: tuple[str, str, str, str] = ("", "", "", "")) -> Any:
        ptype = str(plugin["type"])
        cid, netns, ifname, args = attachment
        return await self._run(self.find_plugin(ptype), ptype, command,
                               spec.plugin_config(plugin, conf.name, version, prev_result=prev,
                                                  extra=extra),
                               container_id=cid, netns=netns, ifname=ifname, args=args)

    # -- the result cache (libcni's idea, podnet's format) ---------------------------------
    def _cache_file(self, network: str, container_id: str, ifname: str) -> Path:
        return self.cache_dir / "results" / f"{network}-{container_id}-{ifname}"

    def _read_cache(self, container_id: str, ifname: str, network: str | None) -> Obj | None:
        candidates: Iterable[Path]
        if network is not None and self._cache_file(network, container_id, ifname).exists():
            candidates = [self._cache_file(network, container_id, ifname)]
        else:
            pattern = glob.escape(f"-{container_id}-{ifname}")
            candidates = sorted((self.cache_dir / "results").glob(f"*{pattern}"))
        for path in candidates:
            entry = self._load_cache_file(path)
            if entry is not None and (entry["containerId"], entry["ifName"]) == (
                    container_id, ifname):
                return entry
        return None

    @staticmethod
    def _load_cache_file(path: Path) -> Obj | None:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("kind") != CACHE_KIND:
            return None
        entry["_path"] = str(path)
        return entry

    def cached_attachments(self) -> list[Obj]:
        """Every cached attachment: kind, containerId, ifName, networkName, netns, cniArgs,
        cniVersion, config, result."""
        try:
            paths = sorted((self.cache_dir / "results").iterdir())
        except FileNotFoundError:
            return []
        return [e for e in map(self._load_cache_file, paths) if e is not None]

    def _write_cache(self, entry: Obj) -> None:
        path = self._cache_file(entry["networkName"], entry["containerId"], entry["ifName"])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        data = json.dumps(entry).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # -- the verbs -------------------------------------------------------------------------
    async def add(self, container_id: str, netns_path: str, ifname: str = "eth0",
                  args: dict[str, str] | None = None) -> dict[str, Any]:
        """Attach the container; the final Result (cached for DEL, CHECK and GC)."""
        spec.validate_container_id(container_id)
        spec.validate_ifname(ifname)
        cni_args = spec.format_cni_args(args or {})
        async with self._gate.shared(), self._locks.hold((container_id, ifname)):
            conf = self.load()
            version = await self.negotiated_version(conf)
            if self._read_cache(container_id, ifname, conf.name) is not None:
                raise CniError(ERR_INTERFACE_EXISTS, f"container {container_id} already has "
                               f"interface {ifname!r} on network {conf.name}: DEL it first")
            attachment = (container_id, netns_path, ifname, cni_args)
            result: Obj | None = None
            for i, plugin in enumerate(conf.plugins):
                try:
                    out = await self._plugin(conf, version, plugin, "ADD", prev=result,
                                             attachment=attachment)
                    result = spec.normalize_result(out, version,
                                                   source=f"result of plugin {plugin['type']}")
                except CniError:
                    await self._undo_add(conf, version, i, attachment)
                    raise
            assert result is not None
            try:
                self._write_cache({
                    "kind": CACHE_KIND, "containerId": container_id, "ifName": ifname,
                    "networkName": conf.name, "netns": netns_path,
                    "cniArgs": [list(kv) for kv in spec.parse_cni_args(cni_args)],
                    "cniVersion": version, "config": conf.raw, "result": result})
            except OSError as e:
                await self._undo_add(conf, version, len(conf.plugins) - 1, attachment)
                raise CniError(ERR_IO, f"cannot cache the result of ADD in {self.cache_dir}: "
                               f"{e.strerror}") from None
            return result

    async def _undo_add(self, conf: NetworkConfigList, version: str, last: int,
                        attachment: tuple[str, str, str, str]) -> None:
        for plugin in reversed(conf.plugins[:last + 1]):
            try:
                await self._plugin(conf, version, plugin, "DEL", attachment=attachment)
            except CniError as e:
                log.warning("DEL after a failed ADD of %s/%s: %s", attachment[0],
                            attachment[2], e)

    async def delete(self, container_id: str, netns_path: str, ifname: str = "eth0",
                     args: dict[str, str] | None = None) -> None:
        """Detach the container; idempotent, also when netns_path is gone."""
        spec.validate_container_id(container_id)
        spec.validate_ifname(ifname)
        async with self._gate.shared(), self._locks.hold((container_id, ifname)):
            await self._delete(container_id, netns_path, ifname, args)

    async def _delete(self, container_id: str, netns_path: str, ifname: str,
                      args: dict[str, str] | None) -> None:
        current: NetworkConfigList | None
        try:
            current = self.load()
        except CniError:
            current = None
        cached = self._read_cache(container_id, ifname, current.name if current else None)
        prev: Obj | None = None
        if cached is not None:
            conf = spec.parse_conflist(cached["config"])
            version = str(cached["cniVersion"])
            if spec.version_at_least(version, "0.4.0"):
                prev = spec.normalize_result(cached["result"], version, source="cached result")
            netns_path = netns_path or str(cached.get("netns") or "")
            pairs = [(str(k), str(v)) for k, v in cached.get("cniArgs") or []]
            cni_args = spec.format_cni_args(args) if args is not None else ";".join(
                f"{k}={v}" for k, v in pairs)
        elif current is not None:
            conf, version = current, await self.negotiated_version(current)
            cni_args = spec.format_cni_args(args or {})
        else:
            log.warning("DEL %s/%s: no cached result and no network configuration; nothing "
                        "to run", container_id, ifname)
            return
        attachment = (container_id, netns_path, ifname, cni_args)
        for plugin in reversed(conf.plugins):
            await self._plugin(conf, version, plugin, "DEL", prev=prev, attachment=attachment)
        if cached is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cached["_path"])

    async def check(self, container_id: str, netns_path: str, ifname: str = "eth0",
                    args: dict[str, str] | None = None) -> None:
        """Ask every plugin whether the attachment is as ADD left it; raises CniError if not."""
        spec.validate_container_id(container_id)
        spec.validate_ifname(ifname)
        async with self._gate.shared(), self._locks.hold((container_id, ifname)):
            try:
                current: str | None = self.load().name
            except CniError:
                current = None
            cached = self._read_cache(container_id, ifname, current)
            if cached is None:
                raise CniError(ERR_UNKNOWN_CONTAINER, f"CHECK {container_id}/{ifname}: no "
                               "cached ADD result (CHECK needs a container that was added)")
            conf = spec.parse_conflist(cached["config"])
            version = str(cached["cniVersion"])
            if conf.disable_check:
                return
            if not spec.version_at_least(version, "0.4.0"):
                raise CniError(ERR_INCOMPATIBLE_VERSION, f"CHECK needs cniVersion 0.4.0 or "
                               f"later; the attachment uses {version}")
            prev = spec.normalize_result(cached["result"], version, source="cached result")
            pairs = [(str(k), str(v)) for k, v in cached.get("cniArgs") or []]
            cni_args = spec.format_cni_args(args) if args is not None else ";".join(
                f"{k}={v}" for k, v in pairs)
            attachment = (container_id, netns_path, ifname, cni_args)
            for plugin in conf.plugins:
                await self._plugin(conf, version, plugin, "CHECK", prev=prev,
                                   attachment=attachment)

    async def status(self) -> None:
        """Raise CniError when the network cannot take ADDs (no configuration, a plugin
        missing, no common version, or a plugin's STATUS error)."""
        conf = self.load()
        version = await self.negotiated_version(conf)
        if not spec.version_at_least(version, "1.1.0"):
            return
        for plugin in conf.plugins:
            try:
                await self._plugin(conf, version, plugin, "STATUS")
            except CniError as e:
                if e.code in PREDATES_VERB:
                    continue
                raise

    async def gc(self, valid: list[tuple[str, str]]) -> None:
        """Remove every attachment of the network that is not in `valid` (containerID,
        ifname): cached ones by DEL, then (1.1.0+) what the plugins know of by GC."""
        keep = {(str(c), str(i)) for c, i in valid}
        async with self._gate.exclusive():
            conf = self.load()
            if conf.disable_gc:
                return
            version = await self.negotiated_version(conf)
            errors: list[CniError] = []
            for entry in self.cached_attachments():
                key = (str(entry["containerId"]), str(entry["ifName"]))
                if entry.get("networkName") != conf.name or key in keep:
                    continue
                try:
                    await self._delete(key[0], str(entry.get("netns") or ""), key[1], None)
                except CniError as e:
                    errors.append(e)
            if spec.version_at_least(version, "1.1.0"):
                listed = spec.gc_attachments(sorted(keep))
                extra = {VALID_ATTACHMENTS: listed, ATTACHMENTS_OLD: listed}
                for plugin in conf.plugins:
                    try:
                        await self._plugin(conf, version, plugin, "GC", extra=extra)
                    except CniError as e:
                        if e.code not in PREDATES_VERB:
                            errors.append(e)
            if errors:
                raise CniError(errors[0].code, "GC: " + "; ".join(e.msg for e in errors),
                               "; ".join(e.details for e in errors if e.details))

    async def version(self, plugin_type: str) -> dict[str, Any]:
        """A plugin's VERSION result (cniVersion, supportedVersions)."""
        path = self.find_plugin(plugin_type)
        obj = await self._run(path, plugin_type, "VERSION", {"cniVersion": LATEST})
        if not isinstance(obj, dict):
            raise CniError(ERR_INTERNAL, f"plugin {plugin_type}: VERSION printed no object")
        spec.supported_versions(obj)
        return obj


async def _talk(proc: asyncio.subprocess.Process, data: bytes) -> tuple[bytes, bytes]:
    """Give a plugin its config on stdin and collect its output. A plugin may answer without
    reading stdin (an unknown command, say) and exit first: a closed pipe is not an error."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin

    async def feed() -> None:
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass  # the plugin did not read its config (uvloop raises RuntimeError here)
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                stdin.close()

    _, out, err = await asyncio.gather(feed(), proc.stdout.read(), proc.stderr.read())
    await proc.wait()
    return out, err
