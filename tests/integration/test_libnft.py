"""nft in-process (podnet.kernel.libnft, and podnet.proxy.nft on top of it), in real network
namespaces this test makes: podnet-<cluster>-node-1..3 of a cluster name of its own, with no
lab around them (no interfaces but lo). Each test closes the contexts it made and deletes its
namespaces, also when it fails, and checks that the host's own ruleset did not change.

What is shown: scripts land in the namespace asked for and nowhere else (the context's
netlink socket is in that namespace, the host's `nft list ruleset` is unchanged); a refused
script raises KernelError with nft's text and leaves nothing of itself; one process serves
several namespaces, at once; a namespace made again under the same name is found again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest

from podnet.kernel import libnft, netns
from podnet.kernel.netns import KernelError
from podnet.lab import names
from podnet.proxy import nft

pytestmark = pytest.mark.integration

TABLE = "podnet-libnft-test"


def host_ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                          check=True).stdout


def ruleset_in(ns: str) -> str:
    """What an nft process sees in `ns` (not through the library under test)."""
    return subprocess.run(netns.exec_argv(ns, ["nft", "list", "ruleset"]), capture_output=True,
                          text=True, check=True).stdout


def table_script(ip: str) -> str:
    return (f"table ip {TABLE} {{\n"
            f"\tset ips {{\n\t\ttype ipv4_addr\n\t\telements = {{ {ip} }}\n\t}}\n"
            f"\tchain out {{\n\t\ttype filter hook output priority 0; policy accept;\n"
            f"\t\tip daddr @ips counter\n\t}}\n}}\n")


@pytest.fixture
def namespaces() -> Iterator[Callable[[int], list[str]]]:
    """make(n): n fresh node namespaces; all closed (library contexts) and deleted after."""
    if not libnft.available():
        pytest.skip(f"libnftables is not usable here: {libnft.load_error()}")
    cluster = "t" + secrets.token_hex(4)
    made: list[str] = []
    host_before = host_ruleset()

    def make(n: int) -> list[str]:
        for i in range(1, n + 1):
            ns = names.node_netns(cluster, names.node_name(i))
            made.append(ns)
            netns.add(ns)
        return made[-n:]

    try:
        yield make
    finally:
        for ns in made:
            libnft.close(ns)
            netns.delete(ns)
        assert host_ruleset() == host_before, "the host's own ruleset changed"
        left = [n for n in netns.names() if names.owns_netns(cluster, n)]
        assert not left, f"namespaces left behind: {left}"


def test_rules_land_in_the_namespace_and_not_the_host(namespaces):
    (ns,) = namespaces(1)
    before = host_ruleset()
    out = libnft.run(ns, table_script("10.96.0.10"))
    assert out == ""
    assert host_ruleset() == before
    seen = ruleset_in(ns)
    assert f"table ip {TABLE}" in seen and "10.96.0.10" in seen
    # The context's netlink socket belongs to the node's namespace, not the host's.
    st = os.stat(netns.path(ns))
    assert libnft.socket_netns(ns) == (st.st_dev, st.st_ino)
    host = os.stat("/proc/self/ns/net")
    assert libnft.socket_netns(ns) != (host.st_dev, host.st_ino)
    # Listing through the library reads the same namespace.
    assert libnft.run(ns, "list ruleset") == seen
    # The socket is not inherited by processes the caller spawns.
    ctx = libnft._namespaces[ns].ctx
    assert ctx is not None and ctx.fd >= 0 and not os.get_inheritable(ctx.fd)


def test_a_refused_script_reports_nfts_error_and_changes_nothing(namespaces):
    (ns,) = namespaces(1)
    libnft.run(ns, table_script("10.96.0.10"))
    before = ruleset_in(ns)
    # The kernel refuses the second command (no such set): the first must not stay.
    with pytest.raises(KernelError) as refused:
        libnft.run(ns, f"add element ip {TABLE} ips {{ 10.96.0.11 }}\n"
                       f"add element ip {TABLE} nosuch {{ 10.96.0.12 }}\n")
    assert str(refused.value) == (
        "nft: script:2:35-40: Error: No such file or directory\n"
        f"add element ip {TABLE} nosuch {{ 10.96.0.12 }}\n"
        + " " * 34 + "^^^^^^")
    assert ruleset_in(ns) == before
    # A syntax error in the last line: nothing before it is applied either.
    with pytest.raises(KernelError, match=r"^nft: script:3:[0-9-]+: Error: syntax error"):
        libnft.run(ns, f"add element ip {TABLE} ips {{ 10.96.0.13 }}\n"
                       f"delete table ip {TABLE}\n"
                       "bogus\n")
    assert ruleset_in(ns) == before
    # The context is still good after errors.
    libnft.run(ns, f"add element ip {TABLE} ips {{ 10.96.0.14 }}\n")
    assert "10.96.0.14" in ruleset_in(ns)
    assert "10.96.0.11" not in ruleset_in(ns)


def test_several_namespaces_in_one_process_at_once(namespaces):
    nss = namespaces(3)

    async def fill(i: int, ns: str) -> None:
        await nft.apply(ns, table_script(f"10.96.{i}.1"))
        # Many small transactions per namespace, interleaved with the others'.
        for k in range(2, 52):
            await nft.apply(ns, f"add element ip {TABLE} ips {{ 10.96.{i}.{k} }}\n")

    async def all_at_once() -> None:
        await asyncio.gather(*(fill(i, ns) for i, ns in enumerate(nss, start=1)))

    assert nft.in_process()
    asyncio.run(all_at_once())
    for i, ns in enumerate(nss, start=1):
        seen = ruleset_in(ns)
        for k in range(1, 52):
            assert f"10.96.{i}.{k}" in seen, (ns, k)
        for j in {1, 2, 3} - {i}:
            assert f"10.96.{j}." not in seen, (ns, j)
        st = os.stat(netns.path(ns))
        assert libnft.socket_netns(ns) == (st.st_dev, st.st_ino)
    assert set(nss) <= set(libnft.contexts())


def test_a_namespace_made_again_is_entered_again_and_a_gone_one_is_an_error(namespaces):
    (ns,) = namespaces(1)
    libnft.run(ns, table_script("10.96.0.10"))
    netns.delete(ns)
    with pytest.raises(KernelError, match="cannot open network namespace"):
        libnft.run(ns, f"add element ip {TABLE} ips {{ 10.96.0.11 }}\n")
    netns.add(ns)  # the same name, a new namespace: empty
    libnft.run(ns, table_script("10.96.0.20"))
    seen = ruleset_in(ns)
    assert "10.96.0.20" in seen and "10.96.0.10" not in seen
    st = os.stat(netns.path(ns))
    assert libnft.socket_netns(ns) == (st.st_dev, st.st_ino)


def test_the_nft_process_fallback_applies_the_same_script(namespaces):
    ns1, ns2 = namespaces(2)
    script = table_script("10.96.0.10")

    async def both() -> None:
        await nft.apply(ns1, script)
        await nft.apply_process(ns2, script)
        with pytest.raises(KernelError, match="No such file or directory"):
            await nft.apply_process(ns2, f"add element ip {TABLE} nosuch {{ 1.2.3.4 }}\n")

    asyncio.run(both())
    assert ruleset_in(ns1) == ruleset_in(ns2)


def test_without_the_library_apply_falls_back_to_the_process_and_says_so_once(
        namespaces, monkeypatch, caplog):
    (ns,) = namespaces(1)
    monkeypatch.setattr(nft, "_in_process", None)
    monkeypatch.setattr(libnft, "load_error", lambda: "libnftables.so.1: cannot open")

    def no_library(*args: object, **kw: object) -> None:
        raise AssertionError("libnftables used")

    monkeypatch.setattr(libnft, "arun", no_library)

    async def twice() -> None:
        await nft.apply(ns, table_script("10.96.0.10"))
        await nft.apply(ns, f"add element ip {TABLE} ips {{ 10.96.0.11 }}\n")

    with caplog.at_level("WARNING", logger="podnet.proxy"):
        asyncio.run(twice())
    assert not nft.in_process()
    assert [r.getMessage() for r in caplog.records] == [
        "libnftables cannot be used (libnftables.so.1: cannot open): nft scripts run as "
        "`nft -f -` processes, one per apply"]
    seen = ruleset_in(ns)
    assert "10.96.0.10" in seen and "10.96.0.11" in seen
    assert ns not in libnft.contexts()
