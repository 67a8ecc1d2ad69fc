"""Talking to ReShare (mod-rs through Okapi): login, listing changes, reading requests, staff actions."""

from illbridge.reshare.client import ReShareClient

__all__ = ["ReShareClient"]
