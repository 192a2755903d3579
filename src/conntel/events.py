"""Wire types (msgspec Structs) and the validation of ingested batches."""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from conntel.ids import MAX_SEQUENCE
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
EventPayload = Union[PAYLOAD_TYPES]  # type: ignore[valid-type]  # noqa: UP007 (a union built from a tuple)
# How `e` is documented where it is kept as sent (a dict) or served as recorded (raw JSON).
PAYLOAD_DOC = Meta(
    description="Event kind `k` plus event-specific payload fields, kept exactly as recorded",
    extra_json_schema={"oneOf": [{"$ref": f"#/components/schemas/{kind.name}"} for kind in KINDS]},
)


class NewEvent(Struct, forbid_unknown_fields=True):
    """One event as a connector posts it."""

    t: SequenceNumber
    n: SequenceNumber
    e: Annotated[dict[str, Any], PAYLOAD_DOC]
    v: Version | None = None

    @property
    def kind(self) -> str:
        kind: str = self.e["k"]
        return kind


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


class AppendResult(Struct):
    accepted: int
    duplicates: int


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


def decode_json(body: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    """Decode a request body; MalformedJson when it is not JSON, InvalidBatch when JSON of the wrong shape.

    Not JSON includes what msgspec does not raise as a DecodeError: invalid
    UTF-8 inside a string (UnicodeDecodeError) and nesting deeper than the
    interpreter's recursion limit allows (RecursionError, at about 900 levels).
    """
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        # The typed decoder stops at the first problem, shape or syntax; only
        # on this error path, tell them apart with an untyped parse.
        try:
            msgspec.json.decode(body)
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
_payload_checker = msgspec.json.Decoder(list[_PayloadCheck])


def decode_batch(body: bytes, max_events: int) -> list[NewEvent]:
    """Decode and validate a posted batch; raise InvalidBatch naming the item and field."""
    events: list[NewEvent] = decode_json(body, _batch_decoder)
    if len(events) > max_events:
        raise BatchTooLarge(f"A batch holds at most {max_events} events; this one has {len(events)}")
    # A second typed pass over the same bytes checks every payload against its
    # kind (`$[i].e...` in the error); the events keep `e` exactly as sent.
    decode_json(body, _payload_checker)
    return events


def canonical(payload: dict[str, Any], version: str | None) -> bytes:
    """Order-insensitive, type-exact form used to tell a retry from a conflict."""
    return msgspec.json.encode([payload, version], order="sorted")
