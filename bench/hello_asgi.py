"""The baseline for `bench/run.py`: the smallest useful ASGI app.

It answers every HTTP request with a small JSON body shaped like a Cloudflare
envelope, doing no routing, auth or storage. Served by uvicorn (uvloop,
httptools, one process, no access log: what `conntel serve` ran on until
2026-12-01, when conntel moved to granian), it measures what a plain Python
server stack can do on this machine, the fixed yardstick conntel's
throughput is reported as a ratio to.

    uvicorn --app-dir bench hello_asgi:app --loop uvloop --http httptools --no-access-log
"""

BODY = b'{"result":{"hello":"world"},"success":true,"errors":[],"messages":[]}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
END = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send(START)
    await send(END)
