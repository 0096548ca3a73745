"""A websocket echo server for the waypoint tests."""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(connection):
    async for message in connection:
        await connection.send(f"echo {message}")


async def main():
    async with serve(echo, "0.0.0.0", int(sys.argv[1])) as server:
        await server.serve_forever()


asyncio.run(main())
