"""Wire types (msgspec Structs) and the validation of ingested batches."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple, TypeVar, Union

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from conntel import jsontext
from conntel.ids import MAX_SEQUENCE
from conntel.interrupts import Operation
from conntel.kinds import KINDS, Kind

SequenceNumber = Annotated[int, Meta(ge=0, le=MAX_SEQUENCE)]
# Text the stores keep as text: PostgreSQL text cannot hold a NUL character.
NO_NUL = r"^[^\x00]*$"
Version = Annotated[str, Meta(max_length=128, pattern=NO_NUL)]


# --- Event payloads: one Struct per kind, generated from the kinds table. -----
# They validate `e` (a known `k`, the kind's required fields); the payload
# itself is stored as the client sent it, extra fields included.
def _payload_struct(kind: Kind) -> type[Struct]:
    fields = [(name, str) for name in kind.required]
    return msgspec.defstruct(kind.name, fields, tag_field="k", tag=kind.name, kw_only=True)


PAYLOAD_TYPES: tuple[type[Struct], ...] = tuple(_payload_struct(kind) for kind in KINDS)
_KIND_OF: dict[type[Struct], str] = {struct: kind.name for struct, kind in zip(PAYLOAD_TYPES, KINDS, strict=True)}
EventPayload = Union[PAYLOAD_TYPES]  # type: ignore[valid-type]  # noqa: UP007 (a union built from a tuple)
# How `e` is documented where it is kept as sent (a dict) or served as recorded (raw JSON).
PAYLOAD_DOC = Meta(
    description="Event kind `k` plus event-specific payload fields, kept exactly as recorded",
    extra_json_schema={"oneOf": [{"$ref": f"#/components/schemas/{kind.name}"} for kind in KINDS]},
)


# The most bytes one event's `e` may take (without whitespace outside strings): a larger one is refused.
MAX_PAYLOAD_BYTES = 1 << 20


class NewEvent(Struct, forbid_unknown_fields=True):
    """One event as a connector posts it (the wire type; `e` is its exact JSON text)."""

    t: SequenceNumber
    n: SequenceNumber
    e: Annotated[Raw, PAYLOAD_DOC]
    v: Version | None = None


class _NewEventWithoutNul(Struct, forbid_unknown_fields=True):
    """NewEvent without Version's pattern, for a body with no NUL character in any string.

    JSON can only write a NUL as `\\u0000`; in a body without that text, checking `v` with
    a regular expression (most of the typed pass's time) cannot fail and is skipped.
    """

    t: SequenceNumber
    n: SequenceNumber
    e: Raw
    v: Annotated[str, Meta(max_length=128)] | None = None


class ValidEvent(NamedTuple):
    """A posted event that passed validation, as the stores record it."""

    t: int
    n: int
    kind: str
    v: str | None
    e_json: bytes  # `e` byte for byte as posted, minus whitespace outside strings


class Event(Struct, omit_defaults=True):
    """A recorded event as Get Event returns it (`v` omitted when unknown)."""

    e: Annotated[Raw, PAYLOAD_DOC]
    n: int
    t: int
    v: str | UnsetType = UNSET

    @classmethod
    def from_stored(cls, stored: Any) -> Event:
        return cls(Raw(stored.e_json), stored.n, stored.t, UNSET if stored.v is None else stored.v)


class EventListItem(Struct):
    """An event as List Events summarises it: collected at `a`, kind `k`."""

    a: int
    k: str
    n: int
    t: int


class AppendResult(Struct, omit_defaults=True):
    accepted: int
    duplicates: int
    # The connector's pending operation: a push is a check-in too (README, "The device side").
    operation: Operation | UnsetType = UNSET


class MalformedJson(ValueError):
    """The body is not JSON at all."""


class InvalidBatch(ValueError):
    """The body is JSON of the wrong shape; the message says where."""


class BatchTooLarge(ValueError):
    """More events in one batch than the server accepts."""


class EventList(Struct, omit_defaults=True):
    """A page of List Events; `cursor` only when more events follow."""

    count: int
    items: list[EventListItem]
    cursor: str | UnsetType = UNSET


class LatestEvents(Struct):
    count: int
    items: list[Event]


def decode_json(body: bytes, decoder: msgspec.json.Decoder[Any], unique_keys: bool = True) -> Any:
    """Decode a request body; MalformedJson when it is not JSON, InvalidBatch when JSON of the wrong
    shape or (unless `unique_keys` is False: the caller checks) with a key repeated in an object.

    Not JSON includes what msgspec does not raise as a DecodeError: invalid
    UTF-8 inside a string (UnicodeDecodeError) and nesting deeper than the
    interpreter's recursion limit allows (RecursionError, at about 900 levels).
    """
    try:
        value = decoder.decode(body)
        if unique_keys:
            jsontext.check_unique_keys(body)
        return value
    except jsontext.DuplicateKey as exc:
        raise InvalidBatch(str(exc)) from None
    except msgspec.DecodeError as exc:
        # The typed decoder stops at the first problem, shape or syntax; only
        # on this error path, tell them apart with an untyped parse.
        try:
            msgspec.json.decode(body)
        except msgspec.ValidationError:
            pass  # JSON, with a number beyond what msgspec holds (1e400): the typed error names where
        except msgspec.DecodeError as syntax:
            raise MalformedJson(f"Malformed JSON body: {syntax}") from None
        except (UnicodeDecodeError, RecursionError) as unreadable:
            raise MalformedJson(_unreadable(unreadable)) from None
        raise InvalidBatch(str(exc)) from None
    except (UnicodeDecodeError, RecursionError) as unreadable:
        raise MalformedJson(_unreadable(unreadable)) from None


def _unreadable(error: UnicodeDecodeError | RecursionError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"Malformed JSON body: invalid UTF-8 at byte {error.start} of a string"
    return "Malformed JSON body: nested too deeply"


class _PayloadCheck(Struct):
    """The part of a posted event that the payload types validate (the rest is NewEvent's)."""

    e: EventPayload


# Typed decoders build their type tree once; msgspec.convert(value, type)
# builds it on every call, which cost ~50x the whole decode per event.
_batch_decoder = msgspec.json.Decoder(list[NewEvent])
_batch_decoder_without_nul = msgspec.json.Decoder(list[_NewEventWithoutNul])
_payload_checker = msgspec.json.Decoder(list[_PayloadCheck])


T = TypeVar("T")


def decode_exact(body: bytes, decoder: msgspec.json.Decoder[T]) -> tuple[T, bytes]:
    """Decode a body whose parts are kept as sent: (value, the text it was decoded from).

    The decoder's msgspec.Raw fields are then the exact text the client sent for them, never
    re-encoded (`\u00e9`, `1.50`, `1e2`, a 30-digit number stay so), only without whitespace
    outside strings, which goes first in one C pass. Refused: a body that is not UTF-8
    (MalformedJson: a Raw span is not decoded, so not checked otherwise), and a key repeated
    in any object at any depth (InvalidBatch: a parser would silently keep one of the two).
    Ingestion of events uses it; so can any other body kept byte for byte (snapshots).
    """
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"Malformed JSON body: not UTF-8 (byte {exc.start})") from None
    try:
        text = jsontext.compact(body)
    except (msgspec.DecodeError, RecursionError):
        decode_json(body, decoder, unique_keys=False)  # not JSON: raise as for any other body
        raise MalformedJson("Malformed JSON body") from None
    return decode_json(text, decoder, unique_keys=False), text


def check_unique_keys(text: bytes) -> None:
    """InvalidBatch naming the key and its object if one repeats in `text` (see decode_exact)."""
    try:
        jsontext.check_unique_keys(text)
    except jsontext.DuplicateKey as exc:
        raise InvalidBatch(str(exc)) from None


def decode_batch(body: bytes, max_events: int) -> list[ValidEvent]:
    """Decode and validate a posted batch; raise InvalidBatch naming the item and field.

    `e` is kept as the exact text the connector sent (see decode_exact), at most
    MAX_PAYLOAD_BYTES of it per event.
    """
    decoder: msgspec.json.Decoder[Any] = _batch_decoder if jsontext.may_hold_nul(body) else _batch_decoder_without_nul
    events, text = decode_exact(body, decoder)
    if len(events) > max_events:
        raise BatchTooLarge(f"A batch holds at most {max_events} events; this one has {len(events)}")
    # A second typed pass over the same bytes checks every payload against its
    # kind (`$[i].e...` in the error).
    checked = decode_json(text, _payload_checker, unique_keys=False)
    check_unique_keys(text)
    payloads = [bytes(event.e) for event in events]
    sizes = list(map(len, payloads))
    if sizes and max(sizes) > MAX_PAYLOAD_BYTES:
        i = next(i for i, size in enumerate(sizes) if size > MAX_PAYLOAD_BYTES)
        raise InvalidBatch(f"`e` takes {sizes[i]} bytes, at most {MAX_PAYLOAD_BYTES} - at `$[{i}].e`")
    kinds = [_KIND_OF[type(check.e)] for check in checked]
    return [
        ValidEvent(event.t, event.n, kind, event.v, e_json)
        for event, kind, e_json in zip(events, kinds, payloads, strict=True)
    ]


def same_content(e_json: bytes, v: str | None, other: ValidEvent) -> bool:
    """Whether a recorded event (`e_json`, `v`) is the same as `other`: a retry, not a conflict.

    The same `v`, and `e` the same JSON text up to key order and whitespace outside strings:
    every number and string written exactly the same way (`1.50` is not `1.5`, `"\u00e9"` is
    not `"é"`, `1` is not `true`), since Get Event returns `e` as it was first recorded.
    """
    return v == other.v and (e_json == other.e_json or jsontext.canonical(e_json) == jsontext.canonical(other.e_json))
