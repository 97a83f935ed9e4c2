#!/usr/bin/env python3
"""
Tiny HTTP/3 WebTransport echo server for a real-browser check, on aioquic or qh3.

    python wt_server.py --stack aioquic|qh3 [--qh3-fix-empty-scid] [--qh3-connect-protocol]

* UDP 127.0.0.1:<h3 port>: QUIC + H3Connection(enable_webtransport=True),
  max_datagram_frame_size=65536; the extended CONNECT (:protocol webtransport) on path /im is
  answered with :status 200 (stream left open); data on bidi WebTransport streams is echoed
  (FIN echoed too); datagrams are echoed.
  Same hand-written server loop as quic_stacks.py (no serve()/QuicServer).
* TCP 127.0.0.1:<http port>: serves the test page (GET /) that opens
  new WebTransport('https://127.0.0.1:<h3 port>/im', {serverCertificateHashes: [...]}).
* Certificate: fresh ECDSA P-256, valid 10 days in total; the SHA-256 of its DER goes in the page.

Prints "READY <http_port> <h3_port>" then logs events to stderr.

--qh3-fix-empty-scid : work around qh3 2.1.0 QuicConnection._learn_remote_source_cid(), which
                       ignores a zero-length client Source CID (`if header[4]:`), so the
                       transport-parameter check compares b"" with None and fails with
                       "initial_source_connection_id does not match" (Chromium uses an empty SCID).
--debug-packets      : log the header (type, DCID) of every datagram sent.
--qh3-connect-protocol : also advertise SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (qh3 omits it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import importlib
import ipaddress
import os
import sys
import tempfile

ALPN_H3 = ["h3"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_cert(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cp, kp = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cp, kp, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


PAGE = """<!doctype html><meta charset=utf-8><title>wt</title><pre id=out></pre>
<script>
const HASH = new Uint8Array([%(hash)s]);
const URL_ = 'https://127.0.0.1:%(port)d/im';
function out(s) { document.getElementById('out').textContent += s + '\\n'; console.log(s); }
(async () => {
  const r = {url: URL_};
  const t0 = performance.now();
  let wt;
  try {
    wt = new WebTransport(URL_, {serverCertificateHashes: [{algorithm: 'sha-256', value: HASH}]});
    wt.closed.then(i => out('closed ' + JSON.stringify(i)), e => out('closed with error ' + e));
    await wt.ready;
    r.ready_ms = performance.now() - t0;
    const s = await wt.createBidirectionalStream();
    const w = s.writable.getWriter();
    const msg = new TextEncoder().encode('hello over WebTransport '.repeat(8));
    await w.write(msg);
    const rd = s.readable.getReader();
    let got = 0, chunks = [];
    while (got < msg.length) {
      const {value, done} = await rd.read();
      if (done) break;
      got += value.length; chunks.push(value);
    }
    const echo = new Uint8Array(got); let o = 0;
    for (const c of chunks) { echo.set(c, o); o += c.length; }
    r.stream_echo_ok = got === msg.length && echo.every((b, i) => b === msg[i]);
    r.stream_bytes = got;
    r.stream_rtt_ms = performance.now() - t0 - r.ready_ms;
    // 200 sequential 200-byte echoes on the same stream
    const f = new Uint8Array(200).fill(7);
    const t1 = performance.now();
    let pending = 0;
    for (let i = 0; i < 200; i++) {
      await w.write(f); pending += 200;
      while (pending > 0) { const {value, done} = await rd.read(); if (done) throw new Error('eof'); pending -= value.length; }
    }
    r.echo200_ms = performance.now() - t1;
    // datagram echo (best effort, 2 s)
    try {
      const dw = wt.datagrams.writable.getWriter();
      const dr = wt.datagrams.readable.getReader();
      const t2 = performance.now();
      await dw.write(new TextEncoder().encode('dgram'));
      const res = await Promise.race([dr.read(), new Promise(res => setTimeout(() => res(null), 2000))]);
      r.datagram_echo_ok = !!(res && res.value && new TextDecoder().decode(res.value) === 'dgram');
      if (r.datagram_echo_ok) r.datagram_rtt_ms = performance.now() - t2;
    } catch (e) { r.datagram_error = String(e); }
    r.ok = r.stream_echo_ok;
    wt.close({closeCode: 0, reason: 'done'});
  } catch (e) {
    r.ok = false; r.error = String(e && (e.name + ': ' + e.message)) ;
    if (e && e.source) r.error_source = e.source;
    if (e && e.streamErrorCode !== undefined) r.stream_error_code = e.streamErrorCode;
  }
  out('RESULT ' + JSON.stringify(r));
  window.__result = r;
})();
</script>
"""


class Conn:
    def __init__(self, srv, quic):
        self.srv, self.quic = srv, quic
        self.h3 = None
        self.cids = set()
        self.timer = None
        self.timer_at = None

    def on_timer(self):
        self.timer = self.timer_at = None
        try:
            self.quic.handle_timer(now=self.srv.loop.time())
            self.process()
        except Exception as e:
            log("EXCEPTION(timer)", type(e).__name__, e)

    def process(self):
        srv, _M = self.srv, self.srv.M
        ev = self.quic.next_event()
        while ev is not None:
            t = type(ev).__name__
            if t == "ProtocolNegotiated":
                log("ALPN", ev.alpn_protocol)
                self.h3 = srv.H3Class(self.quic, enable_webtransport=True)
            elif t == "ConnectionIdIssued":
                srv.by_cid[ev.connection_id] = self
                self.cids.add(ev.connection_id)
            elif t == "ConnectionIdRetired":
                srv.by_cid.pop(ev.connection_id, None)
                self.cids.discard(ev.connection_id)
            elif t == "ConnectionTerminated":
                log("QUIC terminated:", ev.error_code, ev.frame_type, repr(ev.reason_phrase))
                for c in self.cids:
                    if srv.by_cid.get(c) is self:
                        del srv.by_cid[c]
                if self.timer:
                    self.timer.cancel()
                return
            elif t == "HandshakeCompleted":
                log("handshake completed")
            if self.h3 is not None:
                for h in self.h3.handle_event(ev):
                    self.h3_event(h)
            ev = self.quic.next_event()
        for data, addr in self.quic.datagrams_to_send(now=srv.loop.time()):
            if srv.debug_packets:  # header of each datagram we send (DCID is what matters)
                if data[0] & 0x80:
                    log(
                        "OUT long",
                        len(data),
                        "type",
                        (data[0] >> 4) & 3,
                        "dcid",
                        data[6 : 6 + data[5]].hex() or "(empty)",
                    )
                else:
                    log("OUT short", len(data), "first 8 bytes after flags", data[1:9].hex())
            srv.transport.sendto(data, addr)
        at = self.quic.get_timer()
        if at != self.timer_at:
            if self.timer:
                self.timer.cancel()
            self.timer = None if at is None else srv.loop.call_at(at, self.on_timer)
            self.timer_at = at

    def h3_event(self, h):
        t = type(h).__name__
        if t == "HeadersReceived":
            hd = dict(h.headers)
            log("headers", h.stream_id, hd)
            if hd.get(b":method") == b"CONNECT" and hd.get(b":protocol") == b"webtransport":
                if hd.get(b":path") == b"/im":
                    self.h3.send_headers(h.stream_id, [(b":status", b"200")])
                else:
                    self.h3.send_headers(h.stream_id, [(b":status", b"404")], end_stream=True)
            else:
                self.h3.send_headers(h.stream_id, [(b":status", b"404")], end_stream=True)
        elif t == "WebTransportStreamDataReceived":
            # bidi stream (client-initiated bidi ids are 0 mod 4): echo
            if h.stream_id % 4 == 0:
                self.quic.send_stream_data(h.stream_id, h.data, h.stream_ended)
        elif t == "DatagramReceived":
            flow = getattr(h, "flow_id", None)
            if flow is not None:  # qh3: flow_id = session_id // 4
                self.h3.send_datagram(flow, h.data)
            else:  # aioquic: stream_id = session id
                self.h3.send_datagram(h.stream_id, h.data)
        else:
            log("h3 event", h)


class Server(asyncio.DatagramProtocol):
    def __init__(self, M, config, H3Class):
        self.M, self.config, self.H3Class = M, config, H3Class
        self.loop = asyncio.get_running_loop()
        self.by_cid = {}
        self.debug_packets = False

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        b0 = data[0]
        n = self.config.connection_id_length
        dcid = data[6 : 6 + data[5]] if b0 & 0x80 else data[1 : 1 + n]
        c = self.by_cid.get(dcid)
        if c is None:
            if not (b0 & 0x80) or (b0 & 0x30) != 0 or len(data) < 1200:
                return
            if data[1:5] != b"\x00\x00\x00\x01":
                log("ignoring version", data[1:5].hex())
                return
            scid_len = data[6 + data[5]]
            log(f"new connection from {addr}, dcid={dcid.hex()} scid_len={scid_len}")
            q = self.M.QuicConnection(
                configuration=self.config, original_destination_connection_id=dcid
            )
            c = Conn(self, q)
            for cid in (dcid, q.host_cid):
                self.by_cid[cid] = c
                c.cids.add(cid)
        try:
            c.quic.receive_datagram(data, addr, now=self.loop.time())
            c.process()
        except Exception as e:  # surface stack errors in the log
            log("EXCEPTION", type(e).__name__, e)


async def http_page(page: bytes, reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(page) + page
        )
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def main(args):
    pkg = args.stack
    M = argparse.Namespace()
    M.QuicConfiguration = importlib.import_module(pkg + ".quic.configuration").QuicConfiguration
    conn_mod = importlib.import_module(pkg + ".quic.connection")
    M.QuicConnection = conn_mod.QuicConnection
    h3mod = importlib.import_module(pkg + ".h3.connection")
    H3 = h3mod.H3Connection

    if args.qh3_fix_empty_scid:
        assert pkg == "qh3"
        pull = importlib.import_module("qh3._hazmat").pull_quic_header

        def _learn_remote_source_cid(self, data):
            if self._handshake_complete or self._tls is None:
                return
            if not data or not (data[0] & 0x80) or (data[0] & 0x30) != 0:
                return  # only the client's Initial packets carry its initial SCID
            try:
                header = pull(data, 0, self._configuration.connection_id_length)
            except ValueError:
                return
            if header[4] is not None:  # b"" (zero-length SCID) is a valid value
                self._tls.remote_initial_source_connection_id = header[4]

        conn_mod.QuicConnection._learn_remote_source_cid = _learn_remote_source_cid
        log("patched qh3 QuicConnection._learn_remote_source_cid")

    if args.qh3_connect_protocol:
        assert pkg == "qh3"

        class H3(h3mod.H3Connection):
            def _get_local_settings(self):
                s = super()._get_local_settings()
                s[h3mod.Setting.ENABLE_CONNECT_PROTOCOL] = 1
                return s

        log("qh3 H3Connection advertises ENABLE_CONNECT_PROTOCOL")

    tmp = tempfile.mkdtemp(prefix="wt_")
    cp, kp, digest = make_cert(tmp)
    config = M.QuicConfiguration(
        is_client=False, alpn_protocols=ALPN_H3, max_datagram_frame_size=65536
    )
    config.load_cert_chain(cp, kp)
    loop = asyncio.get_running_loop()
    transport, srv = await loop.create_datagram_endpoint(
        lambda: Server(M, config, H3), local_addr=("127.0.0.1", args.h3_port)
    )
    srv.debug_packets = args.debug_packets
    h3_port = transport.get_extra_info("sockname")[1]
    page = (PAGE % {"hash": ",".join(str(b) for b in digest), "port": h3_port}).encode()
    http = await asyncio.start_server(
        lambda r, w: http_page(page, r, w), "127.0.0.1", args.http_port
    )
    http_port = http.sockets[0].getsockname()[1]
    print(f"READY {http_port} {h3_port}", flush=True)
    await asyncio.sleep(args.lifetime)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--stack", choices=["aioquic", "qh3"], required=True)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--h3-port", type=int, default=0)
    p.add_argument("--lifetime", type=float, default=60)
    p.add_argument("--qh3-fix-empty-scid", action="store_true")
    p.add_argument("--qh3-connect-protocol", action="store_true")
    p.add_argument("--debug-packets", action="store_true", help="log outgoing packet headers")
    import uvloop

    uvloop.run(main(p.parse_args()))
