"""The old home of the wiring, kept only because the end-to-end tests (which must not change) import
``current_services`` and ``Services`` from here. Everything else imports ``illbridge.wiring``."""

from illbridge.wiring import Services, current_services

__all__ = ["Services", "current_services"]
