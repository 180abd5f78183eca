"""OCPP protocol adapters: station events in, OCPP messages out, one module per version.

Adapters are sans-I/O: they build payload dicts and read response dicts; sending, queueing and
timing are the link's job (`simulator/link.py`), and sockets belong to rpc and transport.
"""
