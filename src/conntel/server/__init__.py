"""The server runtime: granian, in one process or several."""
