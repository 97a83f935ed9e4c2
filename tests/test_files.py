"""Files over their own unidirectional streams (PROTOCOL.md "Files"), end to end on a
live gateway: the Python SDK against the node, and raw peers for what an SDK never sends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import time
from pathlib import Path

import pytest

from imaccess.client import Client, ClientError, SendFailed
from imaccess.client.files import file_info
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import (
    CONTENT_TYPE_FILE,
    AuthRequest,
    AuthResponse,
    Code,
    FileAck,
    FileOffer,
    Packet,
    encode_packet,
)
from imaccess.settings import Settings

from .conftest import ClientFactory, token_for
from .devserver import dev_client
from .rawquic import RawPeer


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def _stored(settings: Settings) -> list[Path]:
    """Every file in the blob store but the in-progress area."""
    root = Path(settings.files.directory)
    return [p for p in root.rglob("*") if p.is_file() and ".partial" not in p.parts]


def _partials(settings: Settings) -> list[Path]:
    return list((Path(settings.files.directory) / ".partial").iterdir())


async def test_upload_announces_the_file_and_the_recipient_downloads_it(
    client: ClientFactory, tmp_path: Path
) -> None:
    alice, bob = await client(1), await client(2)
    data = _write(tmp_path / "photo.jpg", 300_000)
    progress: list[int] = []
    ack = await alice.send_file(
        2, tmp_path / "photo.jpg", on_progress=lambda n, _: progress.append(n)
    )
    assert ack.code == Code.OK and ack.file_id and ack.server_seq > 0
    assert progress[-1] == len(data) and progress == sorted(progress)

    announced = await bob.next_message(5)
    assert (announced.msg_id, announced.content_type) == (ack.msg_id, CONTENT_TYPE_FILE)
    info = file_info(announced)
    assert info is not None
    assert (info.file_id, info.name, info.size, info.mime_type) == (
        ack.file_id,
        "photo.jpg",
        len(data),
        "image/jpeg",
    )
    assert info.sha256 == hashlib.sha256(data).hexdigest()

    header = await bob.fetch_file(info.file_id, tmp_path / "got.jpg")
    assert (tmp_path / "got.jpg").read_bytes() == data
    assert (header.name, header.size, header.offset) == ("photo.jpg", len(data), 0)
    # the sender may fetch its own file too
    await alice.fetch_file(info.file_id, tmp_path / "mine.jpg")
    assert (tmp_path / "mine.jpg").read_bytes() == data


async def test_transfers_are_counted_by_direction_and_outcome(
    gateway: EmbeddedGateway, client: ClientFactory, tmp_path: Path
) -> None:
    alice, bob = await client(1), await client(2)
    data = _write(tmp_path / "a.bin", 5000)
    ack = await alice.send_file(2, tmp_path / "a.bin")
    await bob.fetch_file(ack.file_id, tmp_path / "b.bin")
    exposition = gateway.node.metrics.exposition().decode()
    for direction in ("upload", "download"):
        labels = f'direction="{direction}",node="access-1"'
        assert f'access_file_transfers_total{{{labels},outcome="ok"}} 1.0' in exposition
        assert f"access_file_bytes_total{{{labels}}} {len(data)}.0" in exposition


async def test_a_download_resumes_from_what_the_file_already_holds(
    client: ClientFactory, tmp_path: Path
) -> None:
    alice, bob = await client(1), await client(2)
    data = _write(tmp_path / "doc.pdf", 200_000)
    ack = await alice.send_file(2, tmp_path / "doc.pdf")
    partial = tmp_path / "resumed.pdf"
    partial.write_bytes(data[:123_457])
    seen: list[tuple[int, int]] = []
    header = await bob.fetch_file(
        ack.file_id, partial, resume=True, on_progress=lambda n, t: seen.append((n, t))
    )
    assert header.offset == 123_457
    assert partial.read_bytes() == data
    assert seen[-1] == (len(data), len(data))


async def test_a_stranger_cannot_fetch_a_file(client: ClientFactory, tmp_path: Path) -> None:
    alice, mallory = await client(1), await client(3)
    _write(tmp_path / "secret.txt", 1000)
    ack = await alice.send_file(2, tmp_path / "secret.txt")
    with pytest.raises(ClientError) as refused:
        await mallory.fetch_file(ack.file_id, tmp_path / "stolen.txt")
    assert refused.value.code == Code.FILE_NOT_FOUND
    with pytest.raises(ClientError) as unknown:
        await mallory.fetch_file("0" * 32, tmp_path / "nothing.txt")
    assert unknown.value.code == Code.FILE_NOT_FOUND  # the same answer: no existence leak


async def test_an_upload_over_the_size_limit_is_refused_and_leaves_nothing(
    settings: Settings, gateway: EmbeddedGateway, client: ClientFactory, tmp_path: Path
) -> None:
    settings.files.max_size = 100_000
    alice = await client(1)
    _write(tmp_path / "big.bin", 100_001)
    with pytest.raises(SendFailed) as refused:
        await alice.send_file(2, tmp_path / "big.bin")
    assert refused.value.code == Code.FILE_TOO_LARGE
    assert _stored(settings) == [] and _partials(settings) == []
    _write(tmp_path / "fits.bin", 100_000)
    assert (await alice.send_file(2, tmp_path / "fits.bin")).code == Code.OK


async def _authenticated_peer(settings: Settings, gateway: EmbeddedGateway, user: int) -> RawPeer:
    peer = await RawPeer.connect(*gateway.address, gateway.cert_file)
    peer.send(peer.new_stream(), AuthRequest(token_for(settings, user), "raw", "test"))
    reply = await peer.next_of(AuthResponse)
    assert isinstance(reply.body, AuthResponse) and reply.body.code == Code.OK
    return peer


def _offer(data: bytes, *, sha256: bytes | None = None, size: int | None = None) -> FileOffer:
    return FileOffer(
        msg_id=os.urandom(8).hex(),
        to_user=2,
        name="f.bin",
        size=len(data) if size is None else size,
        mime_type="application/octet-stream",
        sha256=hashlib.sha256(data).digest() if sha256 is None else sha256,
    )


async def _upload(peer: RawPeer, offer: FileOffer, content: bytes, end: bool = True) -> int:
    stream = peer.quic.get_next_available_stream_id(is_unidirectional=True)
    peer.quic.send_stream_data(stream, encode_packet(Packet(7, offer)) + content, end_stream=end)
    peer.protocol.transmit()
    return stream


async def _file_ack(peer: RawPeer) -> FileAck:
    packet = await peer.next_of(FileAck)
    assert isinstance(packet.body, FileAck) and packet.seq == 7
    return packet.body


@pytest.mark.parametrize(
    ("offer_for", "content", "code"),
    [
        (lambda d: _offer(d, sha256=b"\0" * 32), b"x" * 5000, Code.FILE_HASH_MISMATCH),
        (lambda d: _offer(d, size=6000), b"x" * 5000, Code.FILE_SIZE_MISMATCH),
        (lambda d: _offer(d, size=4000), b"x" * 5000, Code.FILE_SIZE_MISMATCH),
        (lambda d: _offer(d, sha256=b"short"), b"x" * 5000, Code.INVALID_OFFER),
    ],
    ids=["wrong-hash", "short", "long", "bad-offer"],
)
async def test_a_corrupt_upload_is_refused_with_its_code_and_keeps_nothing(
    settings: Settings, gateway: EmbeddedGateway, offer_for, content: bytes, code: Code
) -> None:
    peer = await _authenticated_peer(settings, gateway, 1)
    offer = offer_for(content)
    await _upload(peer, offer, content)
    ack = await _file_ack(peer)
    assert (ack.code, ack.msg_id) == (code, offer.msg_id)
    assert _stored(settings) == [] and _partials(settings) == []
    peer.close()


async def test_an_aborted_upload_leaves_no_partial_file(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    peer = await _authenticated_peer(settings, gateway, 1)
    data = os.urandom(50_000)
    stream = await _upload(peer, _offer(data), data[:20_000], end=False)
    await _until(lambda: len(_partials(settings)) == 1)
    peer.quic.reset_stream(stream, 0)
    peer.protocol.transmit()
    await _until(lambda: not _partials(settings))
    assert _stored(settings) == []
    peer.close()


async def test_a_stalled_upload_is_reset_with_its_code(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    settings.files.stall_timeout = 0.3
    peer = await _authenticated_peer(settings, gateway, 1)
    data = os.urandom(10_000)
    await _upload(peer, _offer(data), data[:100], end=False)
    assert (await _file_ack(peer)).code == Code.TRANSFER_STALLED
    assert _partials(settings) == [] and _stored(settings) == []
    peer.close()


async def test_uploads_beyond_the_transfer_limit_are_stopped(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    settings.files.max_transfers = 1
    peer = await _authenticated_peer(settings, gateway, 1)
    data = os.urandom(10_000)
    first = await _upload(peer, _offer(data), data[:10], end=False)
    await _until(lambda: len(_partials(settings)) == 1)
    second = _offer(data)
    await _upload(peer, second, data)
    refused = await _file_ack(peer)  # echoes the refused offer's seq and msg_id
    assert (refused.code, refused.msg_id) == (Code.TOO_MANY_TRANSFERS, second.msg_id)
    peer.quic.send_stream_data(first, data[10:], end_stream=True)  # the first one goes on
    peer.protocol.transmit()
    assert (await _file_ack(peer)).code == Code.OK
    peer.close()


async def test_uploads_before_auth_are_refused(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    peer = await RawPeer.connect(*gateway.address, gateway.cert_file)
    data = os.urandom(1000)
    await _upload(peer, _offer(data), data)
    peer.send(peer.new_stream(), AuthRequest(token_for(settings, 1), "raw", "test"))
    assert (await peer.next_of(AuthResponse)).body.code == Code.OK  # type: ignore[attr-defined]
    assert _stored(settings) == []
    peer.close()


async def _until(condition, timeout: float = 5.0) -> None:
    """Poll a filesystem condition (the store has no event to await)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - nothing to await: the state is on disk
            await asyncio.sleep(0.01)


async def _chat_latencies(sender: Client, to_user: int, count: int) -> list[float]:
    """Send→ack times of ``count`` chat messages sent one after another."""
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await sender.send(to_user, f"ping {i}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def test_a_50_mb_file_does_not_hold_up_chat_on_the_same_connection(
    cli_env: dict[str, str], dev_server: object, tmp_path: Path
) -> None:
    # The node runs in its own process (`imaccess dev`), on the other core.
    async with (
        dev_client(cli_env, 1, ack_timeout=10.0) as alice,
        dev_client(cli_env, 2, ack_timeout=10.0) as bob,
    ):
        size = 50 * 1024 * 1024
        data = _write(tmp_path / "video.mp4", size)
        baseline = statistics.median(await _chat_latencies(alice, 2, 20))

        upload = asyncio.create_task(alice.send_file(2, tmp_path / "video.mp4"))
        during_upload: list[float] = []
        while not upload.done():
            during_upload += await _chat_latencies(alice, 2, 1)
        ack = await upload
        assert ack.code == Code.OK

        download = asyncio.create_task(bob.fetch_file(ack.file_id, tmp_path / "copy.mp4"))
        during_download: list[float] = []
        while not download.done():
            during_download += await _chat_latencies(bob, 1, 1)
        await download
        assert hashlib.sha256((tmp_path / "copy.mp4").read_bytes()).digest() == (
            hashlib.sha256(data).digest()
        )

    # With head-of-line blocking a chat frame would wait behind the file's bytes in
    # flight; on their own streams they only share the CPU and the congestion window.
    for during in (during_upload, during_download):
        assert len(during) >= 5, "chat kept flowing during the transfer"
        assert statistics.median(during) < 10 * baseline + 0.1, (baseline, during)
