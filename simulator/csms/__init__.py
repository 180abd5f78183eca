"""The embedded CSMS: a small but real OCPP 1.6J / 2.0.1 backend that `make run` and the tests
talk to. It answers charger-initiated calls and records them in SQLite in batches; it is a
peer for load tests, not a product (no auth, no smart charging, lenient about unknown chargers).
"""

from simulator.csms.server import CsmsConfig, CsmsServer, run_csms

__all__ = ["CsmsConfig", "CsmsServer", "run_csms"]
