"""Fixtures of the link tests (helpers live in ``link_testing``): a real home CA, cars, a proxy."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bridge.pki import HomeCA
from tests.bridge.link_testing import FaultProxy, pair_car


@pytest.fixture(scope="module")
def home_ca(tmp_path_factory: pytest.TempPathFactory) -> HomeCA:
    return HomeCA.create(tmp_path_factory.mktemp("home-ca"))


@pytest.fixture(scope="module")
def car_ssl(home_ca: HomeCA, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return pair_car(home_ca, tmp_path_factory.mktemp("car-1"), "car-1")


@pytest.fixture(scope="module")
def car2_ssl(home_ca: HomeCA, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return pair_car(home_ca, tmp_path_factory.mktemp("car-2"), "car-2")


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[int], Awaitable[FaultProxy]]]:
    proxies: list[FaultProxy] = []

    async def make(target_port: int) -> FaultProxy:
        proxy = FaultProxy(target_port)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.stop()
