"""Fixtures of the WMS client's unit tests (defined in ``wms_fakes``)."""

from wms_fakes import closed_port, exchanges, fake_wms

__all__ = ["closed_port", "exchanges", "fake_wms"]
