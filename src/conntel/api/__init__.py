"""The HTTP API, wire-compatible with the Cloudflare v4 API."""
