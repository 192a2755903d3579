"""Connectors: the wire types (as the official SDK types them), the stored record, and the
operations the HTTP API and the admin CLI share."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
import zoneinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args, overload

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from conntel import ids
from conntel.credentials import new_token_secret, secret_hash
from conntel.events import NO_NUL

if TYPE_CHECKING:
    from conntel.store.base import Store

Weekday = Literal["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
DeviceType = Literal["MANAGED", "LICENSED"]
DEVICE_TYPES: tuple[DeviceType, ...] = get_args(DeviceType)

HourOfDay = Annotated[float, Meta(ge=0, lt=24, description="Hour of day (local to `timezone`) the window opens")]
DurationHours = Annotated[float, Meta(gt=0, le=24, description="Length of the interrupt window in hours")]
Day = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A date, YYYY-MM-DD")]
# Bounds on what a client can grow (README, Connectors): embargo dates are distinct, at most this many.
MAX_EMBARGO_DATES = 1000
MAX_NOTES_LENGTH = 4096
_DISTINCT = {"uniqueItems": True}
EmbargoDates = Annotated[list[Day], Meta(max_length=MAX_EMBARGO_DATES, extra_json_schema=_DISTINCT)]
WeekdayList = Annotated[list[Weekday], Meta(max_length=len(WEEKDAYS), extra_json_schema=_DISTINCT)]
Notes = Annotated[str, Meta(max_length=MAX_NOTES_LENGTH, pattern=NO_NUL)]
DeviceText = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]
TimeZone = Annotated[str, Meta(min_length=1, max_length=64, description="IANA time zone name")]
NOTES_ALLOWED_CONTROLS = "\t\n\r"  # notes are free text: lines and tabs, no other control character


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class ConnectorSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """A connector's settings as stored; defaults for a new one.

    Its checks are those settings were ever stored under, so every stored connector stays readable.
    What a client sends is SettingsRequest: these with the bounds of README's Connectors section.
    """

    activated: bool = False
    interrupt_window_days_of_week: list[Weekday] = msgspec.field(default_factory=lambda: list(WEEKDAYS))
    interrupt_window_duration_hours: DurationHours = 3.0
    interrupt_window_embargo_dates: list[Day] = msgspec.field(default_factory=list)
    interrupt_window_hour_of_day: HourOfDay = 0.0
    notes: Notes = ""
    timezone: TimeZone = "UTC"

    def __post_init__(self) -> None:
        check_settings(self)


class SettingsRequest(ConnectorSettings, kw_only=True, forbid_unknown_fields=True):
    """The settings a create, PUT or PATCH body carries: bounded (at most 1000 distinct embargo dates,
    days named once, notes without control characters other than tab and line breaks)."""

    interrupt_window_days_of_week: WeekdayList = msgspec.field(default_factory=lambda: list(WEEKDAYS))
    interrupt_window_embargo_dates: EmbargoDates = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        check_request(self)


def check_settings(settings: Any) -> None:
    """Checks a JSON schema cannot express; raising ValueError makes msgspec report the field."""
    days = settings.interrupt_window_days_of_week
    if days is not UNSET and len(set(days)) != len(days):
        raise ValueError("interrupt_window_days_of_week lists a day twice")
    dates = settings.interrupt_window_embargo_dates
    if dates is not UNSET:
        for day in dates:
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"interrupt_window_embargo_dates: {day!r} is not a date") from None
    if settings.timezone is not UNSET and settings.timezone not in _time_zones():
        raise ValueError(f"timezone: {settings.timezone!r} is not an IANA time zone")


def check_request(settings: Any) -> None:
    """check_settings, and the bounds on what a client sends that a schema cannot express."""
    check_settings(settings)
    dates = settings.interrupt_window_embargo_dates
    if dates is not UNSET and len(set(dates)) != len(dates):
        raise ValueError("interrupt_window_embargo_dates lists a date twice")
    notes = settings.notes
    if notes is not UNSET and (char := ids.control_character(notes, NOTES_ALLOWED_CONTROLS)) is not None:
        raise ValueError(f"notes: control character U+{ord(char):04X} (only tab and line breaks are allowed)")


class DeviceSpec(Struct, forbid_unknown_fields=True):
    """Exactly one of id, serial_number, or provision_license must be provided."""

    id: DeviceText | UnsetType = UNSET
    serial_number: DeviceText | UnsetType = UNSET
    provision_license: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        for name in ("id", "serial_number"):
            value = getattr(self, name)
            if value is not UNSET and (char := ids.control_character(value)) is not None:
                raise ValueError(f"device.{name}: control character U+{ord(char):04X}")
        given = [name for name in ("id", "serial_number") if getattr(self, name) is not UNSET]
        if self.provision_license is True:
            given.append("provision_license")
        if len(given) != 1:
            raise ValueError("device needs exactly one of id, serial_number or provision_license: true")


class ConnectorCreate(SettingsRequest, kw_only=True, forbid_unknown_fields=True):
    device: DeviceSpec


class ConnectorUpdate(SettingsRequest, kw_only=True, forbid_unknown_fields=True):
    """PUT: every setting is replaced; one not given returns to its default."""

    provision_license: bool = False


def _edit_struct() -> type[Struct]:
    # PATCH: the same fields as SettingsRequest, each optional; one source of truth.
    fields: list[tuple[str, Any, Any]] = [
        (field.name, field.type | UnsetType, UNSET) for field in msgspec.structs.fields(SettingsRequest)
    ]
    fields.append(("provision_license", bool, False))
    return msgspec.defstruct(
        "ConnectorEdit", fields, kw_only=True, forbid_unknown_fields=True, namespace={"__post_init__": check_request}
    )


ConnectorEdit = _edit_struct()


class Device(Struct, omit_defaults=True):
    id: str
    serial_number: str | None = None
    type: DeviceType | None = None


class Connector(Struct, omit_defaults=True, kw_only=True):
    """A connector as the API returns it."""

    id: str
    activated: bool
    interrupt_window_days_of_week: list[Weekday]
    interrupt_window_duration_hours: float
    interrupt_window_embargo_dates: list[str]
    interrupt_window_hour_of_day: float
    last_updated: str
    notes: str
    timezone: str
    device: Device | None = None
    last_heartbeat: str | None = None
    last_seen_version: str | None = None
    license_key: str | UnsetType = UNSET  # only in the response that provisioned it


class DeviceCredential(Struct):
    """A connector's own credential, as minted (shown once)."""

    connector_id: str
    value: str


@overload
def iso_time(seconds: int) -> str: ...
@overload
def iso_time(seconds: int | None) -> str | None: ...
def iso_time(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A connector as the store keeps it."""

    account_id: str
    connector_id: str
    settings: ConnectorSettings
    created_on: int
    last_updated: int
    device_id: str | None = None
    device_serial_number: str | None = None
    device_type: DeviceType | None = None
    license_key_hash: bytes | None = None
    last_heartbeat: int | None = None  # when the connector last pushed events
    last_seen_version: str | None = None  # `v` of its newest event that carried one


# -- operations (the API and the admin CLI) --


class NotLicensed(ValueError):
    """provision_license asked of a connector whose device is not LICENSED."""


@dataclasses.dataclass(frozen=True)
class Provisioned:
    """A connector record plus, when one was just made, its license key (shown once)."""

    record: ConnectorRecord
    license_key: str | None = None


def to_wire(record: ConnectorRecord, license_key: str | None = None) -> Connector:
    device = None
    if record.device_id is not None:
        device = Device(record.device_id, record.device_serial_number, record.device_type)
    return Connector(
        id=record.connector_id,
        **msgspec.structs.asdict(record.settings),
        last_updated=iso_time(record.last_updated),
        device=device,
        last_heartbeat=iso_time(record.last_heartbeat),
        last_seen_version=record.last_seen_version,
        license_key=license_key if license_key is not None else UNSET,
    )


async def create(
    store: Store,
    account_id: str,
    settings: ConnectorSettings,
    device: DeviceSpec | None = None,
    connector_id: str | None = None,
    max_per_account: int | None = None,
) -> Provisioned:
    """Raises NotFound (no such account), AlreadyExists, or TooManyConnectors when the account already
    has `max_per_account` connectors (checked in the store's transaction, so concurrent creates cannot
    pass it)."""
    now = int(time.time())
    license_key, key_hash = None, None
    device_id: str | None
    serial: str | None
    device_type: DeviceType | None
    if device is None:  # made by an operator (CLI) before any device is known
        device_id = serial = device_type = None
    elif device.provision_license is True:
        device_id, serial, device_type = ids.new_id(), None, "LICENSED"
        license_key = new_token_secret()
        key_hash = secret_hash(license_key)
    elif device.serial_number is not UNSET:
        device_id, serial, device_type = ids.new_id(), device.serial_number, "MANAGED"
    else:
        device_id, serial, device_type = cast(str, device.id), None, None  # DeviceSpec: exactly one was given
    record = ConnectorRecord(
        account_id=account_id,
        connector_id=connector_id or ids.new_id(),
        settings=settings,
        created_on=now,
        last_updated=now,
        device_id=device_id,
        device_serial_number=serial,
        device_type=device_type,
        license_key_hash=key_hash,
    )
    await store.create_connector(record, max_per_account)
    return Provisioned(record, license_key)


async def change_settings(
    store: Store, account_id: str, connector_id: str, changes: dict[str, Any], provision_license: bool
) -> Provisioned:
    """Apply setting changes (PUT passes every setting, PATCH only those given)."""
    license_key = new_token_secret() if provision_license else None

    def change(current: ConnectorRecord) -> ConnectorRecord:
        # "Regenerate license key": only a licensed (virtual) connector has one to regenerate.
        if license_key is not None and current.device_type != "LICENSED":
            raise NotLicensed(f"Connector {connector_id} has no licensed device: provision_license does not apply")
        settings = msgspec.structs.replace(current.settings, **changes)
        record = dataclasses.replace(current, settings=settings, last_updated=int(time.time()))
        if license_key is not None:
            record = dataclasses.replace(record, license_key_hash=secret_hash(license_key))
        return record

    return Provisioned(await store.update_connector(account_id, connector_id, change), license_key)


async def mint_credential(store: Store, account_id: str, connector_id: str) -> str:
    """A new credential for the connector itself, replacing its earlier one; raises NotFound."""
    value = new_token_secret()
    await store.set_device_credential(account_id, connector_id, secret_hash(value), int(time.time()))
    return value


def settings_of(request: ConnectorCreate | ConnectorUpdate) -> dict[str, Any]:
    """Every setting of a create or PUT body."""
    return {field: getattr(request, field) for field in ConnectorSettings.__struct_fields__}


def given_settings(request: Any) -> dict[str, Any]:
    """The settings a PATCH body gives."""
    return {
        field: getattr(request, field)
        for field in ConnectorSettings.__struct_fields__
        if getattr(request, field) is not UNSET
    }
