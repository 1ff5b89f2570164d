"""The car's address book for one home: order, route, validation, storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.addresses import (
    HomeAddresses,
    load_addresses,
    load_last_url,
    store_addresses,
    store_last_url,
)
from bridge.errors import ProtocolError

LAN = ["wss://192.168.1.10:8766", "wss://[fd00::10]:8766"]
EXTERNAL = "wss://home.example.org:8766"
REMOTE = ["https://home.example.org/api/carhub/link", "https://x.ui.nabu.casa/api/carhub/link"]


def test_home_network_first_and_last_good_leads_its_group() -> None:
    book = HomeAddresses(lan_urls=LAN, external_url=EXTERNAL, remote_urls=REMOTE)
    assert book.dial_order() == [*LAN, EXTERNAL, *REMOTE]
    assert book.dial_order(REMOTE[1]) == [*LAN, REMOTE[1], EXTERNAL, REMOTE[0]]
    assert book.dial_order(LAN[1]) == [LAN[1], LAN[0], EXTERNAL, *REMOTE]
    assert book.dial_order("wss://gone:1") == [*LAN, EXTERNAL, *REMOTE]
    assert book.route(LAN[0]) == "home_network"
    assert book.route(EXTERNAL) == "remote"
    assert book.route(REMOTE[0]) == "remote"


@pytest.mark.parametrize(
    "body",
    [
        {"lan_urls": "wss://a:1"},
        {"lan_urls": ["ftp://a/"]},
        {"lan_urls": ["https://"]},
        {"lan_urls": [], "remote_urls": []},
        {"lan_urls": ["wss://a:1"] * 17},
        {"lan_urls": ["wss://a:1\n"]},
        {"lan_urls": [], "external_url": 5},
    ],
)
def test_bad_address_lists_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        HomeAddresses.from_body(body)


def test_store_keeps_the_rest_of_home_json(tmp_path: Path) -> None:
    home = {"version": 1, "hub_id": "h1", "lan_urls": LAN, "external_url": None, "paired_at": "x"}
    (tmp_path / "home.json").write_text(json.dumps(home), encoding="utf-8")
    assert load_addresses(tmp_path).remote_urls == []
    new = HomeAddresses(lan_urls=LAN[:1], remote_urls=REMOTE[:1])
    assert store_addresses(tmp_path, new) is True
    assert store_addresses(tmp_path, new) is False  # unchanged: not rewritten
    stored = json.loads((tmp_path / "home.json").read_text(encoding="utf-8"))
    assert stored["hub_id"] == "h1" and stored["paired_at"] == "x"
    assert load_addresses(tmp_path) == new
    assert load_last_url(tmp_path) is None
    store_last_url(tmp_path, REMOTE[0])
    assert load_last_url(tmp_path) == REMOTE[0]
    (tmp_path / "link.json").write_text("[not json", encoding="utf-8")
    assert load_last_url(tmp_path) is None
