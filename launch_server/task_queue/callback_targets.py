"""Which addresses the `callback` hook may reach, and the one DNS lookup per attempt that picks them.

A callback URL is chosen by whoever submits a task, so without a rule the server would POST from
inside its own network on their behalf (cloud metadata at 169.254.169.254, databases, Ray's own
ports). The rule is LAUNCH_CALLBACK_NETWORKS: CIDRs and the keywords `public` (globally routable
unicast addresses) and `loopback`. Unset, it is `public`, plus `loopback` when the server is bound
to a loopback address: then only this machine can submit tasks, and it can reach loopback anyway.

The host is resolved once per attempt and the connection is made only to the addresses that passed,
so a name that resolves differently the second time (DNS rebinding) cannot slip past the check."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "LAUNCH_CALLBACK_NETWORKS"
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# IPv6 prefixes that carry an IPv4 address a gateway forwards to: that IPv4 address is the real target.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class CallbackRefused(Exception):
    """The callback may not be sent as asked (scheme, destination or a redirect). Retrying the same
    URL cannot change that, so the attempt is final."""


def unwrap(address: Address) -> Address:
    """The IPv4 address behind an IPv4-mapped or 6to4 IPv6 address (the one packets really reach)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return embedded
    return address


def is_public(address: Address) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared (CGNAT), multicast or
    reserved, and not a NAT64 address (its embedded IPv4 address could be any of those)."""
    address = unwrap(address)
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in NAT64):
        return False
    return address.is_global and not address.is_multicast and not address.is_reserved


@dataclass(frozen=True)
class CallbackNetworks:
    """The allow-list callbacks are checked against."""

    networks: tuple[Network, ...] = ()
    public: bool = False

    @classmethod
    def parse(cls, spec: str, *, local: bool) -> CallbackNetworks:
        """Reads a LAUNCH_CALLBACK_NETWORKS value; empty means `public` (+ `loopback` if local).
        Raises ValueError naming the entry that is not a keyword or a network."""
        entries = [e.strip() for e in spec.split(",") if e.strip()] or (["public", "loopback"] if local else ["public"])
        networks: list[Network] = []
        public = False
        for entry in entries:
            if entry.lower() == "public":
                public = True
            elif entry.lower() == "loopback":
                networks.extend(LOOPBACK)
            else:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"{SETTING}: {entry!r} is not a network (CIDR), an address, 'public' or 'loopback'"
                    ) from None
        return cls(tuple(networks), public)

    def allows(self, address: Address) -> bool:
        # Checked as the IPv4 address a mapped or 6to4 form really reaches, so such a form
        # cannot get into an IPv4 network the list leaves out.
        address = unwrap(address)
        if self.public and is_public(address):
            return True
        return any(address.version == net.version and address in net for net in self.networks)

    def describe(self) -> str:
        parts = (["public"] if self.public else []) + [str(n) for n in self.networks]
        return ", ".join(parts) or "nothing"


def is_loopback_bind(bind: str) -> bool:
    """Whether a gRPC bind address ("host:port", "[v6]:port", "unix:path") only takes local clients."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Target:
    """A callback destination that passed the check: connect only to `addresses`."""

    url: str
    host: str
    port: int
    addresses: tuple[Address, ...]


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused(f"refused: {url!r} is not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused(f"refused: {url!r} has an invalid port") from None
    if not parts.hostname:
        raise CallbackRefused(f"refused: {url!r} names no host")
    return parts.hostname, port


def _lookup(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _fmt(addresses: Iterable[Address]) -> str:
    return ", ".join(str(a) if unwrap(a) == a else f"{a} ({unwrap(a)})" for a in addresses)


async def resolve(url: str, networks: CallbackNetworks, executor: Executor) -> Target:
    """Checks the URL and resolves its host once (on `executor`, never the default one). Raises
    CallbackRefused when no address it resolves to is allowed; OSError when the lookup fails."""
    host, port = _split(url)
    literal = _literal(host)
    if literal is not None:
        found = [literal]
    else:
        found = await asyncio.get_running_loop().run_in_executor(executor, _lookup, host, port)
    allowed = tuple(a for a in found if networks.allows(a))
    if not allowed:
        shown = _fmt(found) if literal is not None else f"{host} resolves to {_fmt(found)}"
        raise CallbackRefused(f"refused: {shown}, outside {SETTING} ({networks.describe()})")
    return Target(url, host, port, allowed)
