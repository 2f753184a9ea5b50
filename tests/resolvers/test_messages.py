"""The broker wire format (resolvers/messages.py): the exact bytes of every message type, read
back by ``decode``, and what ``decode`` refuses. The bytes are what the previous release writes
and reads, so they must never change by accident."""

from __future__ import annotations

import json

import pytest

from resolvers.messages import (
    CATALOGUE_CHANNEL,
    RELOAD,
    BadgeCause,
    BadgeChange,
    CatalogueChange,
    MalformedMessage,
    Reload,
    decode,
    user_channel,
)

# (message, its bytes on the wire): each pair is checked in both directions.
GOLDEN = [
    (
        BadgeChange(BadgeCause.NOTICE, 7, 3, ((12, 2), (14, 0))),
        b'{"c":"NOTICE","v":7,"s":3,"b":[[12,2],[14,0]]}',
    ),
    (
        BadgeChange(BadgeCause.OPEN_WORKBENCH, 8, 0, ()),
        b'{"c":"OPEN_WORKBENCH","v":8,"s":0,"b":[]}',
    ),
    (
        BadgeChange(BadgeCause.OPEN_APP, 9, 2, ((12, 0),)),
        b'{"c":"OPEN_APP","v":9,"s":2,"b":[[12,0]]}',
    ),
    (BadgeChange(BadgeCause.READ, 10, 1, ((14, 1),)), b'{"c":"READ","v":10,"s":1,"b":[[14,1]]}'),
    (
        BadgeChange(BadgeCause.SET, 2**40, 2**31 - 1, ((2**53, 2**31 - 1),)),
        b'{"c":"SET","v":1099511627776,"s":2147483647,"b":[[9007199254740992,2147483647]]}',
    ),
    (RELOAD, b'{"r":1}'),
    (CatalogueChange(app_ids=(3, 5, 8)), b'{"a":[3,5,8]}'),
    (CatalogueChange(app_ids=()), b'{"a":[]}'),
    (CatalogueChange(everything=True), b'{"all":1}'),
]


@pytest.mark.parametrize(("message", "wire"), GOLDEN)
def test_every_message_encodes_to_its_golden_bytes(message, wire):
    """Each message type encodes to exactly the bytes the previous release publishes."""
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), GOLDEN)
def test_golden_bytes_decode_to_their_message(message, wire):
    """The previous release's bytes decode to the typed message they stand for."""
    assert decode(wire) == message


def test_badge_change_bytes_are_the_previous_encoders():
    """Badge changes are byte for byte the previous release's json.dumps output, every cause."""
    for cause in BadgeCause:
        for version, unseen, badges in [
            (1, 0, ()),
            (123456789, 42, ((1, 0),)),
            (5, 7, tuple((app_id, app_id * 37 % 1000) for app_id in range(1, 40))),
        ]:
            previous = json.dumps(
                {"c": cause.value, "v": version, "s": unseen, "b": [list(b) for b in badges]},
                separators=(",", ":"),
            ).encode()
            assert BadgeChange(cause, version, unseen, badges).encode() == previous


def test_catalogue_change_of_sorts_dedups_and_caps():
    """``CatalogueChange.of`` lists ids ascending and once; past 1000 ids it says everything."""
    assert CatalogueChange.of([8, 3, 5, 3]) == CatalogueChange(app_ids=(3, 5, 8))
    assert (
        CatalogueChange.of(range(1000)).encode()
        == json.dumps({"a": list(range(1000))}, separators=(",", ":")).encode()
    )
    assert CatalogueChange.of(range(1001)) == CatalogueChange(everything=True)


def test_reload_is_one_value():
    """Every reload is equal and encodes the same bytes."""
    assert Reload() == RELOAD
    assert Reload().encode() == b'{"r":1}'


def test_keys_a_later_release_adds_are_ignored():
    """Unknown keys beside a message's own do not stop it being read (forward compatible)."""
    assert decode(b'{"c":"READ","v":3,"s":0,"b":[],"x":1}') == BadgeChange(
        BadgeCause.READ, 3, 0, ()
    )
    assert decode(b'{"r":1,"why":"removal"}') == RELOAD
    assert decode(b'{"all":1,"a":[1]}') == CatalogueChange(everything=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe garbage",
        b"[]",
        b'"text"',
        b"1",
        b"{}",
        b'{"r":2}',
        b'{"x":1}',
        b"[" * 100_000,
        b'{"c":"LOUD","v":1,"s":0,"b":[]}',
        b'{"c":7,"v":1,"s":0,"b":[]}',
        b'{"c":["NOTICE"],"v":1,"s":0,"b":[]}',
        b'{"c":"NOTICE","s":0,"b":[]}',
        b'{"c":"NOTICE","v":"1","s":0,"b":[]}',
        b'{"c":"NOTICE","v":1.5,"s":0,"b":[]}',
        b'{"c":"NOTICE","v":true,"s":0,"b":[]}',
        b'{"c":"NOTICE","v":1,"s":null,"b":[]}',
        b'{"c":"NOTICE","v":1,"s":0}',
        b'{"c":"NOTICE","v":1,"s":0,"b":{}}',
        b'{"c":"NOTICE","v":1,"s":0,"b":[1]}',
        b'{"c":"NOTICE","v":1,"s":0,"b":[[1]]}',
        b'{"c":"NOTICE","v":1,"s":0,"b":[[1,2,3]]}',
        b'{"c":"NOTICE","v":1,"s":0,"b":[[1,"2"]]}',
        b'{"c":"NOTICE","v":1,"s":0,"b":[[false,2]]}',
        b'{"a":["x"]}',
        b'{"a":[1.0]}',
        b'{"a":1}',
        b'{"a":null}',
        b'{"all":0}',
        b'{"v":' + b"9" * 5000 + b"}",
    ],
)
def test_decode_refuses_what_is_not_a_message(data):
    """Bytes that are not one of the messages raise MalformedMessage, never anything else."""
    with pytest.raises(MalformedMessage):
        decode(data)


def test_malformed_message_is_a_value_error():
    """Callers that catch ValueError around decoding also catch MalformedMessage."""
    assert issubclass(MalformedMessage, ValueError)


def test_channel_names():
    """Channel names are the previous release's: per user, and one for the catalogue."""
    assert user_channel(1001, 1034) == "wb:user:1001:1034"
    assert CATALOGUE_CHANNEL == "wb:catalogue"
