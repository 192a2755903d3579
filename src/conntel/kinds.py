"""The connector event kinds: the single source of truth.

Validation, the OpenAPI document, the CLI and the dashboard all read this
table. Order follows the official SDK's `E.k` literal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    # Payload fields inside `e` that this kind must carry (name -> meaning);
    # all are strings. Any other payload field is kept as recorded.
    required: dict[str, str] = field(default_factory=dict)


KINDS: tuple[Kind, ...] = (
    Kind("Init", "Initialized process"),
    Kind("Leave", "Stopped process"),
    Kind("StartAttestation", "Started attestation"),
    Kind("FinishAttestationSuccess", "Finished attestation"),
    Kind("FinishAttestationFailure", "Failed attestation"),
    Kind("StartRotateCryptKey", "Started crypt key rotation"),
    Kind("FinishRotateCryptKeySuccess", "Finished crypt key rotation"),
    Kind("FinishRotateCryptKeyFailure", "Failed crypt key rotation"),
    Kind("StartRotatePki", "Started PKI rotation"),
    Kind("FinishRotatePkiSuccess", "Finished PKI rotation"),
    Kind("FinishRotatePkiFailure", "Failed PKI rotation"),
    Kind("StartUpgrade", "Started upgrade", {"url": "Location of upgrade bundle"}),
    Kind("FinishUpgradeSuccess", "Finished upgrade"),
    Kind("FinishUpgradeFailure", "Failed upgrade"),
    Kind("BlessSlotSuccess", "Blessed boot entry slot"),
    Kind("BlessSlotPending", "Boot entry slot is not yet blessed"),
    Kind("BlessSlotFailure", "Failed to bless boot entry slot"),
    Kind("Reconcile", "Reconciled"),
    Kind("ConfigureCloudflaredTunnel", "Configured Cloudflared tunnel"),
    Kind("RekeyInstallBoth", "Installed initial inbound and outbound keys"),
    Kind("RekeyStart", "Installed new inbound key, kept old outbound"),
    Kind("RekeyRestart", "Restarted in-progress rekey with newer key material"),
    Kind("RekeyAdvance", "Confirmed traffic on new inbound key, swapped outbound to new"),
    Kind("RekeyComplete", "Deleted old keys"),
    Kind("RekeyReset", "Deleted all keys after receiving an unexpected key"),
    Kind("HaTransition", "Completed HA state transition"),
    Kind("HaError", "Received unexpected HA error"),
    Kind("HaInit", "Initialized HA subsystem"),
    Kind("HaLeave", "Stopped HA subsystem"),
)

KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

# Kinds that report something going wrong: shown as failures by the CLI and the dashboard.
FAILURE_KINDS: frozenset[str] = frozenset(
    name for name in KIND_NAMES if name.endswith("Failure") or name in ("HaError", "RekeyReset")
)
