"""The snapshot field tree (conntel.snapshots) against the official SDK's own types.

The SDK's pydantic models (PyPI cloudflare 5.9.0) are the truth: every object
of the tree has the same fields, each required exactly when the SDK requires it.
Validation names the path of a wrong value at any depth and keeps unknown fields.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from cloudflare.types.magic_transit.connectors import snapshot_get_response as sdk

from conntel import snapshots

# Our table for each SDK model, by the SDK's class name.
TABLES: dict[str, tuple[snapshots.F, ...]] = {
    "SnapshotGetResponse": snapshots.SNAPSHOT,
    "Bond": snapshots.BOND,
    "DHCPLease": snapshots.DHCP_LEASE,
    "Disk": snapshots.DISK,
    "Interface": snapshots.INTERFACE,
    "InterfaceIPAddress": snapshots.INTERFACE_IP_ADDRESS,
    "Mount": snapshots.MOUNT,
    "Netdev": snapshots.NETDEV,
    "Route": snapshots.ROUTE,
    "Thermal": snapshots.THERMAL,
    "Tunnel": snapshots.TUNNEL,
}
REQUIRED_TOP = {
    "count_reclaim_failures",
    "count_reclaimed_paths",
    "count_record_failed",
    "count_transmit_failures",
    "t",
    "v",
}
decoder = msgspec.json.Decoder(list[snapshots.Snapshot])


@pytest.mark.parametrize("model_name", sorted(TABLES))
def test_each_object_has_the_sdk_fields_and_required_flags(model_name: str) -> None:
    model = getattr(sdk, model_name)
    ours = {field.name: field.required for field in TABLES[model_name]}
    theirs = {name: info.is_required() for name, info in model.model_fields.items()}
    assert ours == theirs


def test_the_top_level_counts_match_the_contract() -> None:
    assert len(snapshots.SNAPSHOT) == 175
    assert {field.name for field in snapshots.SNAPSHOT if field.required} == REQUIRED_TOP
    assert set(snapshots.NESTED) == {
        "bonds", "dhcp_leases", "disks", "interfaces", "interfaces[].ip_addresses",
        "mounts", "netdevs", "routes", "thermals", "tunnels",
    }  # fmt: skip


def filled(model: Any) -> dict[str, Any]:
    """A value for every field of an SDK model, nested objects included: the fullest snapshot."""
    value: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        while typing.get_origin(annotation) in (typing.Union, list, typing.List):  # noqa: UP006
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if typing.get_origin(annotation) in (list, typing.List):  # noqa: UP006
                value[name] = [filled(args[0])]
                break
            annotation = args[0]
        else:
            value[name] = {str: "x", float: 1.0, bool: True}[annotation]
    return value


def required_only() -> dict[str, Any]:
    return {name: ("2026.1.1" if name == "v" else 1_700_000_000 if name == "t" else 0) for name in REQUIRED_TOP}


def test_a_snapshot_with_every_field_filled_is_valid() -> None:
    full = filled(sdk.SnapshotGetResponse) | {"t": 1_700_000_000}
    [snapshot] = decoder.decode(msgspec.json.encode([full]))
    assert snapshot.netdevs[0].recv_bytes == 1.0
    assert snapshot.interfaces[0].ip_addresses[0].ip_address == "x"


def test_only_the_required_fields_is_valid_and_unknown_fields_are_accepted() -> None:
    decoder.decode(msgspec.json.encode([required_only()]))
    decoder.decode(msgspec.json.encode([required_only() | {"added_in_2027": {"any": ["shape"]}}]))


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            {"netdevs": [filled(sdk.Netdev)] * 3 + [filled(sdk.Netdev) | {"recv_bytes": "12"}]},
            "$[0].netdevs[3].recv_bytes",
        ),
        ({"netdevs": [{k: v for k, v in filled(sdk.Netdev).items() if k != "sent_drop"}]}, "$[0].netdevs[0]"),
        ({"memory_total_bytes": -1}, "$[0].memory_total_bytes"),
        ({"cpu_pressure_10s": 101}, "$[0].cpu_pressure_10s"),
        ({"ha_value": 5}, "$[0].ha_value"),
        ({"tunnels": [filled(sdk.Tunnel) | {"health_value": 4}]}, "$[0].tunnels[0].health_value"),
        (
            {"interfaces": [filled(sdk.Interface) | {"ip_addresses": [{"interface_name": "eth0"}]}]},
            "$[0].interfaces[0].ip_addresses[0]",
        ),
        ({"v": 3}, "$[0].v"),
        ({"t": 1.5}, "$[0].t"),
        ({"platform": "a\x00b"}, "$[0].platform"),
    ],
)
def test_a_wrong_value_is_refused_naming_its_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        decoder.decode(msgspec.json.encode([required_only() | change]))
    assert str(refused.value).endswith(f"at `{path}`"), str(refused.value)


def test_infinities_and_negative_temperatures() -> None:
    body = msgspec.json.encode([required_only()]).replace(b'"t"', b'"memory_free_bytes":1e999,"t"', 1)
    with pytest.raises(msgspec.ValidationError, match=r"memory_free_bytes"):
        decoder.decode(body)
    decoder.decode(msgspec.json.encode([required_only() | {"thermals": [{"label": "cpu", "current_celcius": -12.5}]}]))


def _with_member_twice(text: bytes, key: bytes, nth: int, escape: bool) -> bytes:
    """`text` with the `nth` member named `key` written twice (the copy's name `\\u`-escaped if `escape`)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(b'"' + key + b'":', at + 1)
    end = at + len(key) + 3
    depth, cut = 0, end
    while depth or text[cut : cut + 1] not in (b",", b"}"):  # the end of the member's value
        depth += text[cut : cut + 1] in (b"{", b"[")
        depth -= text[cut : cut + 1] in (b"}", b"]")
        cut += 1
    name = b"".join(b"\\u%04x" % c for c in key) if escape else key
    return text[:cut] + b',"' + name + b'"' + text[at + len(key) + 2 : cut] + text[cut:]


@pytest.mark.parametrize("escape", [False, True])
@pytest.mark.parametrize(
    ("key", "nth", "where"),
    [
        (b"t", 0, "$[1]"),  # a required top-level field
        (b"memory_total_bytes", 0, "$[1]"),  # an optional one
        (b"recv_bytes", 3, "$[1].netdevs[3]"),  # at depth
        (b"ip_address", 2, "$[1].interfaces[1].ip_addresses[0]"),  # two levels down (the 1st: a DHCP lease)
        (b"added_in_2027", 0, "$[1]"),  # an unknown field
        (b"any", 0, "$[1].added_in_2027"),  # inside an unknown field's value
    ],
)
def test_a_key_twice_in_any_object_of_a_snapshot_is_refused_naming_it(
    key: bytes, nth: int, where: str, escape: bool
) -> None:
    """The typed parse keeps one of two equal keys; decode_batch must still see them (a stored snapshot is
    its text as sent, and two readers of it could disagree on the value)."""
    full = filled(sdk.SnapshotGetResponse) | {"t": 1_700_000_000, "added_in_2027": {"any": ["shape"], "x": 1}}
    full["netdevs"] = [filled(sdk.Netdev) | {"name": f"eth{i}"} for i in range(4)]
    full["interfaces"] = [filled(sdk.Interface) | {"name": f"if{i}"} for i in range(2)]
    first = msgspec.json.encode(required_only() | {"t": 1_699_999_999})
    text = msgspec.json.encode(full)
    assert snapshots.decode_batch(b"[" + first + b"," + text + b"]")[1].t == 1_700_000_000  # valid as it is
    twice = _with_member_twice(text, key, nth, escape)
    with pytest.raises(snapshots.InvalidBatch, match="duplicate field") as refused:
        snapshots.decode_batch(b"[" + first + b"," + twice + b"]")
    assert str(refused.value).endswith(f"at `{where}`"), str(refused.value)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"platform": "a\x00b"}, "$[2].platform"),
        ({"netdevs": [filled(sdk.Netdev), filled(sdk.Netdev) | {"name": "eth\x00"}]}, "$[2].netdevs[1].name"),
        (
            {"interfaces": [filled(sdk.Interface) | {"ip_addresses": [{"interface_name": "e", "ip_address": "\x00"}]}]},
            "$[2].interfaces[0].ip_addresses[0].ip_address",
        ),
    ],
)
def test_a_batch_refuses_a_nul_in_any_text_field_at_any_depth(change: dict[str, Any], path: str) -> None:
    """decode_batch checks NUL only in batches whose JSON may hold one (a cheaper decode otherwise): the
    NUL is still found, in whichever snapshot and at whatever depth, and named by its path."""
    batch = [required_only() | {"t": 1}, required_only() | {"t": 2}, required_only() | {"t": 3} | change]
    with pytest.raises(snapshots.InvalidBatch) as refused:
        snapshots.decode_batch(msgspec.json.encode(batch))
    assert str(refused.value).endswith(f"at `{path}`"), str(refused.value)


def test_a_backslash_before_u0000_is_text_not_a_nul() -> None:
    """An escaped backslash followed by `u0000` is seven ordinary characters: accepted, kept as sent."""
    body = msgspec.json.encode([required_only() | {"platform": "C:\\u0000", "site_id": "\\\\u0000x"}])
    assert b"\\\\u0000" in body
    (kept,) = snapshots.decode_batch(body)
    assert msgspec.json.decode(kept.json)["platform"] == "C:\\u0000"
    assert kept.json == body[1:-1]


NUMBERS = [b"0", b"1", b"-1", b"2", b"3", b"100", b"101", b"-0", b"1.5", b"-0.5", b"1e2", b"1e308", b"1e309", b"-1e309"]
NUMBERS += [str(n).encode() for n in (2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30))]
NUMBERS += [b"9" * 400, b"-" + b"9" * 400, b"true", b"null", b'"1"', b"[]"]


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n[:24].decode())
@pytest.mark.parametrize(
    "template",
    [
        b'{"memory_total_bytes":%s}',  # a count: >= 0
        b'{"cpu_pressure_10s":%s}',  # a percentage
        b'{"ha_value":%s}',  # a small legend, 0..2
        b'{"thermals":[{"label":"cpu","current_celcius":%s}]}',  # any finite number, at depth
        b'{"tunnels":[{"tunnel_id":"a","health_state":"x","health_value":%s}]}',
    ],
    ids=["count", "percent", "legend", "temperature", "tunnel-health"],
)
def test_every_number_is_judged_as_the_declared_tree_judges_it(template: bytes, number: bytes) -> None:
    """decode_batch reads integers as ints where it can (a faster decode): its verdict on any number, at
    any size, is still the declared tree's (floats), in the same words."""
    base = msgspec.json.encode(required_only())
    body = b"[" + base[:-1] + b"," + (template % number)[1:] + b"]"
    try:
        decoder.decode(body)
        declared = None
    except msgspec.ValidationError as exc:
        declared = str(exc)
    try:
        (kept,) = snapshots.decode_batch(body)
        ours = None
        assert kept.json == body[1:-1]  # accepted as sent, byte for byte
    except snapshots.InvalidBatch as exc:
        ours = str(exc)
    assert ours == declared
