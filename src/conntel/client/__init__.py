"""Everything that talks to a conntel server over HTTP: the client, the reading CLI, the fleet simulator.

A client knows the server only through the wire: nothing here imports
conntel.store or conntel.api (tests/test_layout.py checks).
"""
