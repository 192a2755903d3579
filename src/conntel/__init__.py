"""conntel: a Magic WAN Connector telemetry events service, wire-compatible with the Cloudflare v4 API."""

__version__ = "0.1.0"
