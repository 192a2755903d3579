"""`e` exactly as recorded: byte for byte (apart from whitespace outside strings), duplicate keys refused."""

from __future__ import annotations

import httpx
import pytest
from helpers import World, bearer

T0 = 1_700_100_000

# Each is returned as it was sent: a re-encoding would change every one of them.
EXACT = [
    rb'{"k":"Init","name":"caf\u00e9"}',
    rb'{"k":"Init","ratio":1.50}',
    rb'{"k":"Init","limit":1e2,"other":1E+2,"small":-0.0e-0}',
    rb'{"k":"Init","decimal":3.14159265358979323846264338327,"int":123456789012345678901234567890}',
    rb'{"k":"Init","huge":1e400,"slash":"a\/b","quote":"\"","u":"\ud83d\ude00"}',
    '{"k":"Init","raw":"é ü 😀"}'.encode(),
    rb'{"z":{"b":[1,{"y":null,"x":true}],"a":false},"k":"Init"}',
    # An integer beyond any float (a parser refuses to hold it): valid JSON, kept as sent.
    b'{"k":"Init","beyond_floats":' + b"9" * 5000 + b"}",
]


def post_raw(world: World, connector: str, body: bytes) -> httpx.Response:
    headers = {**bearer(world.write_token), "Content-Type": "application/json"}
    return httpx.post(world.events_url(connector), content=body, headers=headers)


def get_raw(world: World, connector: str, t: int, n: int) -> bytes:
    response = httpx.get(f"{world.events_url(connector)}/{t}.{n}", headers=bearer(world.read_token))
    assert response.status_code == 200, response.text
    return response.content


def batch(*payloads: bytes, t: int = T0) -> bytes:
    return b"[" + b",".join(b'{"t":%d,"n":%d,"e":%s}' % (t, n, p) for n, p in enumerate(payloads)) + b"]"


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]


def test_payloads_come_back_byte_for_byte(world: World):
    connector = world.new_connector()
    assert post_raw(world, connector, batch(*EXACT)).json()["result"] == {"accepted": len(EXACT), "duplicates": 0}
    for n, payload in enumerate(EXACT):
        assert b'{"e":%s,"n":%d,"t":%d}' % (payload, n, T0) in get_raw(world, connector, T0, n)
    latest = httpx.get(f"{world.events_url(connector)}/latest", headers=bearer(world.read_token)).content
    for payload in EXACT:
        assert b'"e":%s,' % payload in latest


def test_whitespace_outside_strings_may_go_but_never_inside(world: World):
    connector = world.new_connector()
    sent = b'{ "k" :\t"Init" ,\r\n "msg" : "two  spaces, a\\ttab : and {braces} [ ]" , "a" : [ 1 , { } , [ ] ] }'
    assert post_raw(world, connector, b" [ " + b'{ "t" : %d , "n" : 0 , "e" : %s }' % (T0, sent) + b" ] ").is_success
    expected = b'{"k":"Init","msg":"two  spaces, a\\ttab : and {braces} [ ]","a":[1,{},[]]}'
    assert b'"e":%s,' % expected in get_raw(world, connector, T0, 0)
    # The same event written with other whitespace and another key order is a retry.
    again = b'[{"e":{"a":[1,{},[]],"msg":"two  spaces, a\\ttab : and {braces} [ ]","k":"Init"},"n":0,"t":%d}]' % T0
    assert post_raw(world, connector, again).json()["result"] == {"accepted": 0, "duplicates": 1}


@pytest.mark.parametrize(
    ("payload", "where", "key"),
    [
        (rb'{"k":"Init","x":1,"x":2}', "$[1].e", "x"),
        (b'{"k":"Init","x":' + b"9" * 5000 + b',"x":2}', "$[1].e", "x"),  # beside a number no parser holds
        (rb'{"k":"Init","a":{"b":[1,{"c":1,"d":{},"c":1}]}}', "$[1].e.a.b[1]", "c"),
        (rb'{"k":"Init","x":1,"\u0078":1}', "$[1].e", "x"),  # the same key, written two ways
        (rb'{"k":"Init","k":"Init"}', "$[1].e", "k"),
        (rb'{"k":"Init","a":[{},"x",{"y":[]}],"b":1,"b":2}', "$[1].e", "b"),  # after an empty object in an array
    ],
)
def test_a_duplicate_key_at_any_depth_is_refused_and_nothing_is_written(
    world: World, payload: bytes, where: str, key: str
):
    connector = world.new_connector()
    response = post_raw(world, connector, batch(rb'{"k":"Init"}', payload))
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 20005
    assert f"`{key}`" in error["message"] and f"`{where}`" in error["message"]
    missing = httpx.get(f"{world.events_url(connector)}/{T0}.0", headers=bearer(world.read_token))
    assert missing.status_code == 404


def test_a_duplicate_key_of_the_event_itself_is_refused(world: World):
    response = post_raw(world, world.connector, b'[{"t":%d,"n":0,"n":1,"e":{"k":"Init"}}]' % T0)
    assert response.status_code == 400
    assert error_of(response)["code"] == 20005 and "`n`" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        (rb'{"k":"Init","x":1.50}', rb'{"k":"Init","x":1.50}', "duplicate"),
        (rb'{"k":"Init","x":1.50,"y":"\u00e9"}', rb'{ "y" : "\u00e9" , "x" : 1.50 , "k" : "Init" }', "duplicate"),
        (rb'{"k":"Init","x":1.50}', rb'{"k":"Init","x":1.5}', "conflict"),
        (rb'{"k":"Init","x":1e2}', rb'{"k":"Init","x":100}', "conflict"),
        (
            rb'{"k":"Init","x":3.14159265358979323846264338327}',
            rb'{"k":"Init","x":3.14159265358979323846264338328}',
            "conflict",
        ),
        (rb'{"k":"Init","x":"\u00e9"}', '{"k":"Init","x":"é"}'.encode(), "conflict"),
    ],
)
def test_a_retry_is_the_same_text_up_to_key_order_and_whitespace(
    world: World, first: bytes, second: bytes, outcome: str
):
    connector = world.new_connector()
    assert post_raw(world, connector, batch(first)).is_success
    # Across batches (the store compares) and within one batch (the batch is checked first).
    for body in (batch(second), batch(first, t=T0 + 1)[:-1] + b"," + batch(second, t=T0 + 1)[1:]):
        response = post_raw(world, connector, body)
        if outcome == "duplicate":
            assert response.json()["result"]["duplicates"] == 1, response.text
        else:
            assert response.status_code == 409 and error_of(response)["code"] == 20006
    assert b'"e":%s,' % first in get_raw(world, connector, T0, 0)


def test_a_body_that_is_not_utf8_is_malformed_json(world: World):
    response = post_raw(world, world.connector, b'[{"t":%d,"n":0,"e":{"k":"Init","x":"\xff\xfe"}}]' % T0)
    assert response.status_code == 400
    assert error_of(response)["code"] == 20004


def test_a_payload_over_one_mebibyte_is_refused(world: World):
    big = b'{"k":"Init","blob":"%s"}' % (b"x" * (1 << 20))
    response = post_raw(world, world.connector, batch(rb'{"k":"Init"}', big))
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 20005 and "`$[1].e`" in error["message"] and "1048576" in error["message"]
    # Whitespace outside strings does not count: just under the limit, padded far over it, is accepted.
    fits = b'{"k":"Init","blob":"%s"}' % (b"x" * ((1 << 20) - 40))
    padded = fits.replace(b",", b"," + b" " * (1 << 20))
    connector = world.new_connector()
    assert post_raw(world, connector, batch(padded)).is_success
    assert b'"e":%s,' % fits in get_raw(world, connector, T0, 0)


def test_a_connector_body_with_a_repeated_key_is_refused(world: World):
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors"
    headers = {**bearer(world.write_token), "Content-Type": "application/json"}
    body = b'{"device":{"serial_number":"S-1","serial_number":"S-2"},"notes":"x"}'
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 20012 and "`serial_number`" in error["message"] and "`$.device`" in error["message"]
