"""The server runtime: uvicorn with guarded connections, in one process or several."""
