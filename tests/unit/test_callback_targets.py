"""The callback allow-list (task_queue/callback_targets.py): what `public`, `loopback` and CIDRs let
through, the default in and out of local mode, and the once-per-attempt lookup."""

from __future__ import annotations

import asyncio
import ipaddress
from concurrent.futures import ThreadPoolExecutor

import pytest

from launch_server.task_queue.callback_targets import (
    CallbackNetworks,
    CallbackRefused,
    is_loopback_bind,
    is_public,
    resolve,
)

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"]  # the last: 6to4 of 8.8.8.8
NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    assert CallbackNetworks.parse("", local=False).allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    assert not CallbackNetworks.parse("", local=False).allows(ipaddress.ip_address(address))


def test_local_mode_adds_loopback_only() -> None:
    local = CallbackNetworks.parse("", local=True)
    for address in ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1", "8.8.8.8"]:
        assert local.allows(ipaddress.ip_address(address)), address
    for address in ["10.0.0.1", "169.254.169.254", "192.168.0.1", "fe80::1"]:
        assert not local.allows(ipaddress.ip_address(address)), address


def test_an_explicit_list_replaces_the_default() -> None:
    networks = CallbackNetworks.parse(" 10.0.0.0/8 , fd00::/8, 192.168.1.7 ", local=True)
    assert networks.allows(ipaddress.ip_address("10.9.9.9"))
    assert networks.allows(ipaddress.ip_address("::ffff:10.9.9.9"))  # checked as what it reaches
    assert networks.allows(ipaddress.ip_address("fd00::5"))
    assert networks.allows(ipaddress.ip_address("192.168.1.7"))
    assert not networks.allows(ipaddress.ip_address("192.168.1.8"))
    assert not networks.allows(ipaddress.ip_address("127.0.0.1")), "local mode adds nothing to an explicit list"
    assert not networks.allows(ipaddress.ip_address("8.8.8.8")), "public only when listed"
    both = CallbackNetworks.parse("public,loopback", local=False)
    assert both.allows(ipaddress.ip_address("8.8.8.8")) and both.allows(ipaddress.ip_address("127.0.0.1"))
    assert both.describe() == "public, 127.0.0.0/8, ::1/128"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "intranet", "10.0.0.0/8;"])
def test_a_bad_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="LAUNCH_CALLBACK_NETWORKS") as error:
        CallbackNetworks.parse(f"public,{entry}", local=False)
    assert repr(entry) in str(error.value)


@pytest.mark.parametrize(
    ("bind", "local"),
    [
        ("127.0.0.1:50051", True),
        ("127.1.2.3:1", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("unix:/tmp/launch.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.0.0.5:50051", False),
        ("launch.example.com:443", False),
    ],
)
def test_local_mode_is_a_loopback_bind(bind: str, local: bool) -> None:
    assert is_loopback_bind(bind) is local


def run_resolve(url: str, spec: str) -> object:
    with ThreadPoolExecutor(1) as pool:
        return asyncio.run(resolve(url, CallbackNetworks.parse(spec, local=False), pool))


def test_resolve_keeps_only_allowed_addresses() -> None:
    target = run_resolve("http://127.0.0.1:8080/hook", "127.0.0.0/8")
    assert (target.host, target.port, target.addresses) == ("127.0.0.1", 8080, (ipaddress.ip_address("127.0.0.1"),))
    target = run_resolve("https://localhost/hook", "127.0.0.0/8")
    assert target.port == 443 and target.addresses == (ipaddress.ip_address("127.0.0.1"),), "::1 left out"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://localhost:8080/", "localhost resolves to 127.0.0.1"),
        ("http://10.0.0.1/", "10.0.0.1, outside LAUNCH_CALLBACK_NETWORKS (8.8.8.0/24)"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1 (10.0.0.1)"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("ftp://8.8.8.8/", "not an http(s) URL"),
        ("http:///nohost", "names no host"),
        ("http://8.8.8.8:99999/", "invalid port"),
    ],
)
def test_resolve_refuses_in_words(url: str, words: str) -> None:
    with pytest.raises(CallbackRefused, match="refused") as refused:
        run_resolve(url, "8.8.8.0/24")
    assert words in str(refused.value)
