"""Every RPC of the descriptor has a wrapper on both clients (needs no server).

The RPCs are read from the generated code (every ``*_pb2`` module of ``fileorganizer._gen.v1``,
so a new proto file or RPC is found without touching this test); a wrapper is a public method
marked with the RPCs it calls (``__rpc__``: the wrapper table sets it, hand-written methods
get it from ``@rpcs``). The README test (test_readme.py) then calls every one of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Dict, List, Set

import pytest

import fileorganizer
import fileorganizer._gen.v1 as gen
from fileorganizer.aio import AsyncClient


def descriptor_rpcs() -> Set[str]:
    paths: Set[str] = set()
    for info in pkgutil.iter_modules(gen.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{gen.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            paths |= {f"/{service.full_name}/{method.name}" for method in service.methods}
    return paths


def wrappers(cls: type) -> Dict[str, List[str]]:
    """RPC path -> the public methods of ``cls`` that wrap it."""
    found: Dict[str, List[str]] = {}
    for name, fn in inspect.getmembers(cls, callable):
        if not name.startswith("_"):
            for path in getattr(fn, "__rpc__", ()):
                found.setdefault(path, []).append(name)
    return found


def test_the_descriptor_is_walked() -> None:
    rpcs = descriptor_rpcs()
    assert len(rpcs) >= 60, sorted(rpcs)
    assert "/fileorganizer.v1.FileService/SearchFiles" in rpcs


@pytest.mark.parametrize("cls", [fileorganizer.Client, AsyncClient], ids=["sync", "asyncio"])
def test_every_rpc_has_a_wrapper(cls: type) -> None:
    covered = wrappers(cls)
    missing = sorted(descriptor_rpcs() - set(covered))
    assert not missing, f"RPCs without a {cls.__name__} wrapper: {missing}"
    unknown = sorted(set(covered) - descriptor_rpcs())
    assert not unknown, f"{cls.__name__} wrappers of RPCs the descriptor lacks: {unknown}"


def test_both_clients_have_the_same_wrappers() -> None:
    sync = {name for names in wrappers(fileorganizer.Client).values() for name in names}
    aio = {name for names in wrappers(AsyncClient).values() for name in names}
    assert sync == aio, f"only sync: {sorted(sync - aio)}; only asyncio: {sorted(aio - sync)}"
    for name in sorted(aio):
        fn = getattr(AsyncClient, name)
        is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or name.startswith("iter_")
        assert is_async, f"AsyncClient.{name} is not async"
        assert not inspect.iscoroutinefunction(getattr(fileorganizer.Client, name)), name
        sync_params = list(inspect.signature(getattr(fileorganizer.Client, name)).parameters)
        assert sync_params == list(inspect.signature(fn).parameters), name
