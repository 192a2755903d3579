"""Connector operations shared by the HTTP API and the CLI."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import msgspec
from msgspec import UNSET

from conntel import ids
from conntel.connectors import (
    Connector,
    ConnectorCreate,
    ConnectorSettings,
    ConnectorUpdate,
    Device,
    DeviceSpec,
    iso_time,
)
from conntel.credentials import new_token_secret, secret_hash
from conntel.store.base import ConnectorRecord, Store


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
) -> Provisioned:
    now = int(time.time())
    license_key, key_hash = None, None
    if device is None:  # made by an operator (CLI) before any device is known
        device_id = serial = device_type = None
    elif device.provision_license is True:
        device_id, serial, device_type = ids.new_id(), None, "LICENSED"
        license_key = new_token_secret()
        key_hash = secret_hash(license_key)
    elif device.serial_number is not UNSET:
        device_id, serial, device_type = ids.new_id(), device.serial_number, "MANAGED"
    else:
        device_id, serial, device_type = device.id, None, None
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
    await store.create_connector(record)
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
