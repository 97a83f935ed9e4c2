"""The browser SDK and demo page (``web/``, built into ``src/imaccess/web/``) in a real
headless Chromium against an embedded gateway: WebTransport, the WebSocket fallback,
interop with the Python SDK, and a reloaded page syncing what it missed.

Needs Debian's ``chromium`` at /usr/bin/chromium (or ``$CHROMIUM``) and ``npm ci`` in
``web/``; the tests fail, not skip, without them. With ``IMACCESS_SCREENSHOTS=1`` they
also refresh the README's screenshots in ``docs/screenshots/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imaccess.client import Client
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol.codes import Code
from imaccess.settings import Settings

from .conftest import ClientFactory, token_for

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
# the README's screenshots are refreshed on request (IMACCESS_SCREENSHOTS=1), so that a
# test run does not rewrite tracked images; otherwise they go to a scratch directory
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("IMACCESS_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "imaccess-screenshots"
)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.timeout(180)


def _requirements() -> None:
    assert Path(CHROMIUM).is_file(), f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    assert shutil.which("node"), "node not found"
    assert (WEB / "node_modules" / "playwright-core").is_dir(), "run `npm ci` in web/"


class Browser:
    """``web/tests/browser.mjs``: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next = 0

    async def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._next += 1
        ident = self._next
        self.proc.stdin.write((json.dumps({"id": ident, "op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert line, f"browser driver exited ({op})"
            reply = json.loads(line)
            if reply.get("id") == ident:
                break
        if not reply["ok"]:
            pages = [args["page"]] if "page" in args else []
            logs = {p: await self._logs(p) for p in pages}
            raise AssertionError(f"{op} {args}: {reply['error']}\n{json.dumps(logs, indent=1)}")
        return reply["result"]

    async def _logs(self, page: str) -> Any:
        try:
            return {
                "console": await self.call("console", page=page),
                "sdk": await self.call("eval", page=page, expr="window.demo ? demo.logs : null"),
            }
        except AssertionError as exc:
            return str(exc)

    async def open(self, page: str, url: str) -> None:
        await self.call("open", page=page, url=url)

    async def eval(self, page: str, expr: str) -> Any:
        return await self.call("eval", page=page, expr=expr)

    async def wait(self, page: str, expr: str, timeout: float = 15.0) -> Any:
        return await self.call("wait", timeout + 10, page=page, expr=expr, ms=int(timeout * 1000))

    async def connected(self, page: str) -> str:
        transport: str = await self.wait(
            page, "window.demo && demo.state === 'connected' && demo.client.transport"
        )
        return transport

    async def received(self, page: str, count: int) -> list[str]:
        contents: list[str] = await self.wait(
            page, f"demo.received.length >= {count} && demo.received.map(m => m.content)"
        )
        return contents

    async def type_and_send(self, page: str, text: str) -> None:
        await self.eval(
            page,
            f"(() => {{ document.getElementById('text').value = {json.dumps(text)};"
            " document.getElementById('send').click(); })()",
        )

    async def screenshot(self, page: str, name: str) -> None:
        await self.call("screenshot", page=page, path=str(SCREENSHOTS / name))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _requirements()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(WEB / "tests" / "browser.mjs"),
        cwd=WEB,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    b = Browser(proc)
    try:
        yield b
    finally:
        with contextlib.suppress(AssertionError, TimeoutError, OSError, ValueError):
            await b.call("quit", timeout=10)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def page_url(gateway: EmbeddedGateway, **query: object) -> str:
    assert gateway.http_address is not None, "the gateway's HTTP listener did not start"
    host, port = gateway.http_address
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"http://{host}:{port}/?{q}"


ACKED = "[...document.querySelectorAll('.msg.out.acked .status')].map(e => e.textContent)"


async def test_webtransport_page_and_websocket_page_chat(
    gateway: EmbeddedGateway, browser: Browser
) -> None:
    await browser.open("a", page_url(gateway, user=101, peer=102))
    await browser.open("b", page_url(gateway, user=102, peer=101, transport="websocket"))
    assert await browser.connected("a") == "webtransport"
    assert await browser.connected("b") == "websocket"
    # each page shows its transport
    assert await browser.eval("a", "document.getElementById('transport').textContent") == (
        "webtransport"
    )
    assert await browser.eval("b", "document.getElementById('transport').textContent") == (
        "websocket"
    )

    await browser.type_and_send("a", "hello from WebTransport")
    assert await browser.received("b", 1) == ["hello from WebTransport"]
    await browser.type_and_send("b", "hello from WebSocket")
    assert await browser.received("a", 1) == ["hello from WebSocket"]
    for _ in range(3):
        await browser.type_and_send("a", f"a{_}")
        await browser.type_and_send("b", f"b{_}")
    assert await browser.received("b", 4) == ["hello from WebTransport", "a0", "a1", "a2"]
    assert await browser.received("a", 4) == ["hello from WebSocket", "b0", "b1", "b2"]
    # a ✓ on every sent message once its MessageAck came
    assert await browser.wait("a", f"{ACKED}.length === 4 && {ACKED}") == ["✓"] * 4
    assert await browser.wait("b", f"{ACKED}.length === 4 && {ACKED}") == ["✓"] * 4
    # the cursor followed the inbox: 4 received + 4 own copies each
    assert await browser.eval("a", "demo.client.lastSeq") == 8
    assert await browser.eval("b", "demo.client.lastSeq") == 8
    await browser.screenshot("a", "demo-webtransport.png")
    await browser.screenshot("b", "demo-websocket.png")


@pytest.mark.parametrize("transport", ["auto", "websocket"])
async def test_page_chats_with_python_client(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, transport: str
) -> None:
    py = await client(202)
    await browser.open("p", page_url(gateway, user=201, peer=202, transport=transport))
    expected = "webtransport" if transport == "auto" else "websocket"
    assert await browser.connected("p") == expected

    ack = await py.send(201, "hi browser, from Python")
    assert ack.code == 0
    assert await browser.received("p", 1) == ["hi browser, from Python"]
    got = await browser.eval("p", "demo.received[0]")
    assert got["fromUser"] == 202 and got["toUser"] == 201 and got["seq"] == 1

    await browser.type_and_send("p", "hi Python, from the browser")
    message = await py.next_message(timeout=10)
    assert (message.from_user, message.content) == (201, "hi Python, from the browser")
    assert await browser.wait("p", f"{ACKED}.length === 1 && {ACKED}") == ["✓"]
    if transport == "auto":
        await browser.screenshot("p", "demo-python-peer.png")


@pytest.mark.parametrize("transport", ["auto", "websocket"])
async def test_reloaded_page_syncs_what_it_missed(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, transport: str
) -> None:
    py = await client(302)
    url = page_url(gateway, user=301, peer=302, transport=transport)
    await browser.open("r", url)
    await browser.connected("r")
    await py.send(301, "m1")
    assert await browser.received("r", 1) == ["m1"]
    assert await browser.eval("r", "demo.client.lastSeq") == 1

    # leave the page: its connection goes; what is sent meanwhile must come on return
    await browser.call("goto", page="r", url="about:blank")
    await py.send(301, "m2")
    await py.send(301, "m3")
    await browser.call("goto", page="r", url=url)
    await browser.connected("r")
    # only what it missed: the persisted cursor (localStorage, per user+device) was used
    assert await browser.received("r", 2) == ["m2", "m3"]
    await py.send(301, "m4")  # a marker: nothing else (no m1 again) may come before it
    assert await browser.received("r", 3) == ["m2", "m3", "m4"]
    assert await browser.eval("r", "demo.client.lastSeq") == 4
    stored = await browser.eval(
        "r", "localStorage.getItem(`imaccess:last_seq:301:${demo.client.deviceId}`)"
    )
    assert stored == "4"
    if transport == "auto":
        await browser.screenshot("r", "demo-after-reload.png")


async def test_sdk_unit_tests() -> None:
    """The SDK's own framing/codec tests (``npm run test:unit``)."""
    _requirements()
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--test",
        "tests/unit.test.mjs",
        cwd=WEB,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


@pytest.mark.parametrize("transport", ["auto", "websocket"])
async def test_page_reconnects_after_transient_kick(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, transport: str
) -> None:
    py = await client(402)
    await browser.open("k", page_url(gateway, user=401, peer=402, transport=transport))
    first = await browser.connected("k")
    conn_id = await browser.eval("k", "demo.client.auth.connId")

    # 3xxx: back off, reconnect, Sync
    for connection in gateway.node.hub.of_user(401):
        connection.kick(Code.HEARTBEAT_TIMEOUT, "test kick")
    reconnected = f"demo.client.auth.connId !== '{conn_id}' && demo.state === 'connected'"
    await browser.wait("k", reconnected)
    assert await browser.eval("k", "demo.client.transport") == first
    await py.send(401, "after reconnect")
    assert await browser.received("k", 1) == ["after reconnect"]
    logs = await browser.eval("k", "demo.logs.join('\\n')")
    if transport == "websocket":
        assert "disconnected: 3002" in logs, logs
    else:
        # WebTransport: the Kick frame is read in-band when it arrives in time; Chromium
        # drops unread stream data when the server closes the QUIC connection at once
        assert "disconnected: 3002" in logs or "disconnected: 0" in logs, logs


@pytest.mark.parametrize("transport", ["auto", "websocket"])
async def test_page_stops_on_4xxx(
    gateway: EmbeddedGateway, browser: Browser, transport: str
) -> None:
    await browser.open("k", page_url(gateway, user=401, peer=402, transport=transport))
    await browser.connected("k")
    connections = gateway.node.hub.of_user(401)
    for connection in connections:
        connection.kick(Code.KICKED_NEW_LOGIN, "test kick for good")
    # the in-band Kick arrives before the close, so the page stops instead of reconnecting
    await browser.wait("k", "demo.state === 'stopped'")
    for connection in connections:
        await asyncio.wait_for(connection.gone, 5)
    assert "4001" in await browser.eval("k", "demo.stopped")
    assert gateway.node.hub.of_user(401) == []


class _WrongHashGateway(EmbeddedGateway):
    """Offers the page a certificate hash that is not the server's: WebTransport fails."""

    def dev_config(self) -> dict[str, Any]:
        config = super().dev_config()
        config["cert_sha256"] = base64.b64encode(bytes(32)).decode()
        return config


async def test_page_falls_back_to_websocket_when_webtransport_fails(
    settings: Settings, browser: Browser
) -> None:
    async with _WrongHashGateway(settings) as gateway:
        await browser.open("f", page_url(gateway, user=501, peer=502))
        assert await browser.connected("f") == "websocket"  # not forced: WebTransport failed
        host, port = gateway.address
        async with Client(
            host,
            port,
            token=token_for(settings, 502),
            ca_file=gateway.cert_file,
            server_name="localhost",
        ) as peer:
            await browser.type_and_send("f", "after the fallback")
            assert (await peer.next_message(10)).content == "after the fallback"


# ---- files (PROTOCOL.md "Files"): WebTransport unidirectional streams; WebSocket: 1016 -------

# JS helpers evaluated in a page: a random File of N bytes kept as window.testFile, the hex
# SHA-256 of a Blob, and the demo's "attach" input fed with window.testFile
MAKE_FILE = """(async () => {{
  const data = new Uint8Array({size});
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  window.testFile = new File([data], {name}, {{ type: 'application/octet-stream' }});
  window.hexOf = async (blob) => [...new Uint8Array(await crypto.subtle.digest('SHA-256',
    await blob.arrayBuffer()))].map(b => b.toString(16).padStart(2, '0')).join('');
  return await hexOf(testFile);
}})()"""
ATTACH = """(() => {
  const dt = new DataTransfer();
  dt.items.add(testFile);
  const input = document.getElementById('attach');
  input.files = dt.files;
  input.dispatchEvent(new Event('change'));
})()"""
UPLOAD_DONE = (
    "demo.uploads.length >= {n} && ['sent', 'failed'].includes(demo.uploads[{n} - 1].state)"
)
# the code an SDK promise rejects with, or 'resolved'
CODE_OF = "({call}).then(() => 'resolved', e => e.name === 'ImaccessError' ? e.code : String(e))"


async def make_file(browser: Browser, page: str, size: int, name: str) -> str:
    sha: str = await browser.eval(page, MAKE_FILE.format(size=size, name=json.dumps(name)))
    return sha


async def test_page_sends_a_file_to_python_and_fetches_it_back(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, tmp_path: Path
) -> None:
    py = await client(602)
    await browser.open("u", page_url(gateway, user=601, peer=602))
    assert await browser.connected("u") == "webtransport"
    size = 3 * 1024 * 1024 + 12345  # several MB, generated in the page
    sha = await make_file(browser, "u", size, "random.bin")

    # the demo's attach input: sendFile on a unidirectional stream, with a progress bar
    await browser.eval("u", ATTACH)
    upload = await browser.wait("u", f"{UPLOAD_DONE.format(n=1)} && demo.uploads[0]", timeout=60)
    assert upload["state"] == "sent", upload
    assert upload["sent"] == size  # the last onProgress saw every byte
    file_id = upload["fileId"]

    # the recipient (Python SDK) gets the chat message announcing the file
    message = await py.next_message(timeout=10)
    assert (message.from_user, message.to_user, message.content_type) == (601, 602, 1)
    assert message.msg_id == upload["msgId"]
    assert json.loads(message.content) == {
        "file_id": file_id,
        "name": "random.bin",
        "size": size,
        "mime_type": "application/octet-stream",
        "sha256": sha,
    }
    # the recipient downloads it with the Python SDK: the same bytes
    header = await py.fetch_file(file_id, tmp_path / "from-page.bin")
    assert header.code == 0 and header.size == size
    assert hashlib.sha256((tmp_path / "from-page.bin").read_bytes()).hexdigest() == sha
    # the sender's bubble became a download button
    assert await browser.wait("u", "document.querySelectorAll('.msg.out button.file').length === 1")

    # back from the server: the SDK checks the hash itself; the page checks it again
    fetched = await browser.eval(
        "u",
        f"""(async () => {{
          const progress = [];
          const f = await demo.client.fetchFile({json.dumps(file_id)},
            {{ onProgress: (n, total) => progress.push([n, total]) }});
          return {{ name: f.name, size: f.size, mimeType: f.mimeType, sha256: f.sha256,
                   got: f.data.size, hash: await hexOf(f.data), last: progress.at(-1) }};
        }})()""",
    )
    assert fetched == {
        "name": "random.bin",
        "size": size,
        "mimeType": "application/octet-stream",
        "sha256": sha,
        "got": size,
        "hash": sha,
        "last": [size, size],
    }
    # resumed from an offset: only the tail comes, and it is the file's tail
    tail = await browser.eval(
        "u",
        f"""(async () => {{
          const from = {size - 1000};
          const f = await demo.client.fetchFile({json.dumps(file_id)}, {{ offset: from }});
          const same = await hexOf(f.data) === await hexOf(testFile.slice(from));
          return [f.offset, f.data.size, same];
        }})()""",
    )
    assert tail == [size - 1000, 1000, True]
    # the demo's button downloads it too (fetchFile, then an object URL)
    await browser.eval("u", "document.querySelector('.msg.out button.file').click()")
    download = await browser.wait(
        "u", "demo.downloads[0] && demo.downloads[0].state !== 'fetching' && demo.downloads[0]"
    )
    assert (download["state"], download["sha256"], download["received"]) == ("saved", sha, size)
    # chat still flows on the bidi streams
    await browser.type_and_send("u", "after the file")
    assert (await py.next_message(timeout=10)).content == "after the file"


async def test_page_file_refusals_and_abort_over_webtransport(
    settings: Settings, browser: Browser
) -> None:
    settings.files.max_size = 3 * 1024 * 1024
    async with (
        EmbeddedGateway(settings) as gateway,
        Client(
            *gateway.address,
            token=token_for(settings, 612),
            ca_file=gateway.cert_file,
            server_name="localhost",
        ) as py,
    ):
        await browser.open("e", page_url(gateway, user=611, peer=612))
        assert await browser.connected("e") == "webtransport"
        await make_file(browser, "e", 2 * 1024 * 1024, "big.bin")
        # an offer the server refuses (to_user 0): FileAck 1017 INVALID_OFFER
        call = "demo.client.sendFile(0, new Blob(['x']))"
        assert await browser.eval("e", CODE_OF.format(call=call)) == 1017
        # over files.max_size: FileAck 1010 and STOP_SENDING at once, the rest is not sent
        call = "demo.client.sendFile(612, new Blob([new Uint8Array(4 * 1024 * 1024)]))"
        assert await browser.eval("e", CODE_OF.format(call=call)) == 1010
        # a file that does not exist (or is not ours): FileHeader 1013 on the request's stream
        assert await browser.eval("e", CODE_OF.format(call="demo.client.fetchFile('nope')")) == 1013
        # aborted mid-way: the stream is reset, the server keeps and announces nothing
        aborted = await browser.eval(
            "e",
            """(async () => {
              const ac = new AbortController();
              const p = demo.client.sendFile(612, testFile, { signal: ac.signal, msgId: 'aborted-1',
                onProgress: (n) => { if (n >= 256 * 1024) ac.abort(); } });
              return await p.then(() => 'resolved', e => e.name);
            })()""",
        )
        assert aborted == "AbortError"
        await browser.type_and_send("e", "marker")  # nothing may come before it
        message = await py.next_message(timeout=10)
        assert (message.content_type, message.content) == (0, "marker")
        # the connection is fine: a whole upload still works
        ok = await browser.eval("e", "demo.client.sendFile(612, testFile).then(r => r.size)")
        assert ok == 2 * 1024 * 1024
        assert (await py.next_message(timeout=10)).content_type == 1
        # leave before the gateway stops, so that it need not drain the page's connection
        await browser.call("goto", page="e", url="about:blank")


async def test_python_sends_a_file_the_page_downloads(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, tmp_path: Path
) -> None:
    py = await client(802)
    await browser.open("d", page_url(gateway, user=801, peer=802))
    assert await browser.connected("d") == "webtransport"
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(1024 * 1024 + 7))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    ack = await py.send_file(801, source)
    assert ack.code == 0
    # the page shows the file message as a button; clicking it downloads and saves the file
    got = await browser.wait("d", "demo.received.length >= 1 && demo.received[0]")
    assert got["contentType"] == 1 and got["fromUser"] == 802
    sdk_file_info = "import('/static/imaccess.js').then(sdk => sdk.fileInfo(demo.received[0]))"
    info = await browser.eval("d", sdk_file_info)
    assert info == {
        "fileId": ack.file_id,
        "name": "report.pdf",
        "size": source.stat().st_size,
        "mimeType": "application/pdf",
        "sha256": sha,
    }
    await browser.eval("d", "document.querySelector('.msg.in button.file').click()")
    download = await browser.wait(
        "d", "demo.downloads[0] && demo.downloads[0].state !== 'fetching' && demo.downloads[0]"
    )
    assert (download["state"], download["sha256"], download["received"]) == (
        "saved",
        sha,
        source.stat().st_size,
    )


async def test_websocket_page_gets_1016_for_files(
    gateway: EmbeddedGateway, browser: Browser, client: ClientFactory, tmp_path: Path
) -> None:
    py = await client(702)
    source = tmp_path / "for-701.txt"
    source.write_text("a file the page may fetch, but not over WebSocket")
    ack = await py.send_file(701, source)
    await browser.open("w", page_url(gateway, user=701, peer=702, transport="websocket"))
    assert await browser.connected("w") == "websocket"
    await make_file(browser, "w", 1000, "small.bin")
    # sendFile: refused at once by the SDK, nothing is sent
    assert (
        await browser.eval("w", CODE_OF.format(call="demo.client.sendFile(702, testFile)")) == 1016
    )
    # the demo shows the failure
    await browser.eval("w", ATTACH)
    upload = await browser.wait("w", f"{UPLOAD_DONE.format(n=1)} && demo.uploads[0]")
    assert upload["state"] == "failed" and upload["error"].startswith("1016"), upload
    # the file message came (Sync); fetching it: the server answers FileHeader{1016}
    got = await browser.wait("w", "demo.received.length >= 1 && demo.received[0]")
    assert got["contentType"] == 1 and json.loads(got["content"])["file_id"] == ack.file_id
    call = f"demo.client.fetchFile({json.dumps(ack.file_id)})"
    assert await browser.eval("w", CODE_OF.format(call=call)) == 1016
    # still connected, chat works
    await browser.type_and_send("w", "still here")
    assert (await py.next_message(timeout=10)).content == "still here"
