"""Inbound's protocol sniffing: the HTTP/2 preface, even cut into pieces, and nothing else."""

from __future__ import annotations

import asyncio

from tests.unit.waypoint.h2_peers import run, stream_pair
from waypoint.exchange import text_reply
from waypoint.inbound import H2_PREFACE, Inbound
from waypoint.messages import Peer

PEER = Peer(None, ("10.0.0.1", 1), ("198.19.0.10", 80))


async def serve(pieces: list[bytes]) -> tuple[list[bytes], list[str], bytes]:
    """Feed `pieces`, then EOF; (what the HTTP/2 server got first, paths served, bytes out)."""
    sniffed: list[bytes] = []
    paths: list[str] = []

    async def http2(stream, first, peer, destination) -> None:
        sniffed.append(first)
        stream.close()

    async def handler(request):
        paths.append(request.head.path)
        return text_reply(200, "ok")

    inbound = Inbound(lambda: None, handler, http2=http2)
    ours, theirs = stream_pair()
    for piece in pieces:
        await theirs.write(piece)
    theirs.write_eof()
    await asyncio.wait_for(inbound.serve(ours, PEER, PEER.destination), 10)
    out = b""
    while not theirs.inbox.empty():
        out += theirs.inbox.get_nowait()
    return sniffed, paths, out


def test_a_preface_cut_anywhere_still_goes_to_http2():
    wire = H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    for cut in range(1, len(H2_PREFACE)):
        sniffed, paths, _ = run(serve([wire[:cut], wire[cut:]]))
        assert sniffed == [wire], cut
        assert paths == []


def test_a_post_that_starts_like_the_preface_goes_to_http1():
    request = b"POST /p HTTP/1.1\r\nhost: web\r\ncontent-length: 0\r\n\r\n"
    sniffed, paths, out = run(serve([request[:1], request[1:]]))
    assert sniffed == [] and paths == ["/p"]
    assert out.startswith(b"HTTP/1.1 200")
