// node --test tests/unit.test.mjs: framing and codec checks (bundles src/client.ts first).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let sdk;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imaccess-unit-'));
  const outfile = path.join(dir, 'sdk.mjs');
  await esbuild.build({ entryPoints: [path.join(root, 'src', 'index.ts')], bundle: true, format: 'esm',
    platform: 'node', target: 'es2022', outfile, logLevel: 'silent' });
  sdk = await import(pathToFileURL(outfile).href);
});

const hex = (b) => Buffer.from(b).toString('hex');

test('Heartbeat frame is byte-identical to PROTOCOL.md', () => {
  assert.equal(hex(sdk.encodeFrame(sdk.MsgType.Heartbeat, 1)),
    '0000001a00000c000000000006000c000400060000000100000000000000');
});

test('decoder handles split and packed frames', () => {
  const a = sdk.encodeFrame(sdk.MsgType.Message, 7, sdk.encodeChat('m-1', 42, 'hi'), 1700000000000);
  const b = sdk.encodeFrame(sdk.MsgType.Heartbeat, 8);
  const all = Buffer.concat([a, b]);
  for (let cut = 0; cut <= all.length; cut++) {
    const d = new sdk.FrameDecoder();
    const frames = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
    assert.equal(frames.length, 2, `cut at ${cut}`);
    assert.deepEqual(frames.map(f => [f.type, f.seq]), [[10, 7], [0, 8]]);
    assert.equal(frames[0].timestamp, 1700000000000);
    const m = sdk.decodeChat(frames[0].payload);
    assert.deepEqual([m.msgId, m.toUser, m.content, m.seq], ['m-1', 42, 'hi', 0]);
    assert.equal(d.buffered, 0);
  }
  // byte by byte
  const d = new sdk.FrameDecoder();
  const frames = [];
  for (const byte of all) frames.push(...d.push(Uint8Array.of(byte)));
  assert.equal(frames.length, 2);
});

test('decoder rejects bad lengths and type mismatch', () => {
  assert.throws(() => new sdk.FrameDecoder().push(Uint8Array.of(0, 1, 0, 1)), e => e.code === 4005);
  assert.throws(() => new sdk.FrameDecoder().push(Uint8Array.of(0, 0, 0, 1)), e => e.code === 4004);
  const f = sdk.encodeFrame(sdk.MsgType.Heartbeat, 1);
  f[5] = 10;  // header says Message, packet says Heartbeat
  assert.throws(() => new sdk.FrameDecoder().push(f), e => e.code === 4004);
});

test('auth and sync payloads round-trip through the generated code', () => {
  const f = new sdk.FrameDecoder().push(sdk.encodeFrame(sdk.MsgType.Sync, 3, sdk.encodeSync(41, 50)))[0];
  assert.equal(f.type, sdk.MsgType.Sync);
  assert.ok(f.payload.length >= 4);
  assert.ok(sdk.encodeAuth('tok', 'dev', 'web').length > 16);
});

test('WebSocket close codes map back to ours', () => {
  assert.equal(sdk.fromWebSocketCloseCode(4601), 2001);
  assert.equal(sdk.fromWebSocketCloseCode(4602), 2002);
  assert.equal(sdk.fromWebSocketCloseCode(4501), 1001);
  assert.equal(sdk.fromWebSocketCloseCode(4001), 4001);
  assert.equal(sdk.fromWebSocketCloseCode(3002), 3002);
  assert.equal(sdk.fromWebSocketCloseCode(1006), 0);
});

test('file messages round-trip through frames', async () => {
  const { createHash } = await import('node:crypto');
  const sha = new Uint8Array(createHash('sha256').update('content').digest());
  const roundTrip = (type, payload) => {
    const [f] = new sdk.FrameDecoder().push(sdk.encodeFrame(type, 9, payload, 1700000000000));
    assert.deepEqual([f.type, f.seq, f.timestamp], [type, 9, 1700000000000]);
    return f.payload;
  };
  const offer = { msgId: 'f-1', toUser: 42, name: 'photo é.jpg', size: 5 * 2 ** 40, mimeType: 'image/jpeg', sha256: sha };
  assert.deepEqual(sdk.decodeFileOffer(roundTrip(sdk.MsgType.FileOffer, sdk.encodeFileOffer(offer))), offer);
  assert.equal(sdk.MsgType.FileOffer, 40);

  const ack = { code: 0, message: 'ok', fileId: 'abc123', msgId: 'f-1', serverSeq: 77, timestamp: 1700000000001 };
  assert.deepEqual(sdk.decodeFileAck(roundTrip(41, sdk.encodeFileAck(ack))), ack);
  assert.deepEqual(sdk.decodeFileAck(roundTrip(41, sdk.encodeFileAck({ code: 1011 }))),
    { code: 1011, message: '', fileId: '', msgId: '', serverSeq: 0, timestamp: 0 });

  assert.deepEqual(sdk.decodeFileRequest(roundTrip(42, sdk.encodeFileRequest('abc123', 1024))), { fileId: 'abc123', offset: 1024 });
  assert.deepEqual(sdk.decodeFileRequest(roundTrip(42, sdk.encodeFileRequest('abc123'))), { fileId: 'abc123', offset: 0 });

  const header = { code: 0, message: '', fileId: 'abc123', name: 'photo é.jpg', size: 7, mimeType: 'image/jpeg', sha256: sha, offset: 3 };
  assert.deepEqual(sdk.decodeFileHeader(roundTrip(43, sdk.encodeFileHeader(header))), header);
  const refused = sdk.decodeFileHeader(roundTrip(43, sdk.encodeFileHeader({ code: 1016, message: 'no streams' })));
  assert.deepEqual([refused.code, refused.message, refused.sha256.length, refused.size], [1016, 'no streams', 0, 0]);
});

test('the first frame of a file stream is split from the raw content after it', () => {
  const frame = sdk.encodeFrame(sdk.MsgType.FileHeader, 5, sdk.encodeFileHeader({ fileId: 'x', size: 3 }));
  const all = Buffer.concat([frame, Buffer.from([1, 2, 3])]);
  assert.equal(sdk.takeFrame(all.subarray(0, frame.length - 1)), null);
  const taken = sdk.takeFrame(all);
  assert.equal(taken.end, frame.length);
  assert.deepEqual([taken.frame.type, taken.frame.seq], [43, 5]);
  assert.deepEqual([...all.subarray(taken.end)], [1, 2, 3]);
});

test('incremental SHA-256 matches node:crypto for any chunking', async () => {
  const { createHash, randomBytes } = await import('node:crypto');
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 100003]) {
    const data = randomBytes(n);
    const expected = createHash('sha256').update(data).digest('hex');
    assert.equal(sdk.toHex(sdk.sha256(data)), expected, `length ${n}`);
    const h = new sdk.Sha256();
    for (let pos = 0, step = 1; pos < n; pos += step, step = (step * 7 + 3) % 97 + 1) h.update(data.subarray(pos, pos + step));
    assert.equal(sdk.toHex(h.digest()), expected, `length ${n}, chunked`);
  }
  assert.equal(sdk.toHex(sdk.sha256(new TextEncoder().encode('abc'))),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('fileInfo reads the JSON of a file message', () => {
  const content = JSON.stringify({ file_id: 'abc', name: 'a.txt', size: 3, mime_type: 'text/plain', sha256: 'AB'.repeat(32) });
  assert.deepEqual(sdk.fileInfo({ contentType: 1, content }),
    { fileId: 'abc', name: 'a.txt', size: 3, mimeType: 'text/plain', sha256: 'ab'.repeat(32) });
  assert.equal(sdk.fileInfo({ contentType: 0, content }), null);
  assert.equal(sdk.fileInfo({ contentType: 1, content: 'not json' }), null);
  assert.equal(sdk.fileInfo({ contentType: 1, content: '{"name": "no id"}' }), null);
  assert.equal(sdk.fileInfo({ contentType: 1, content: 'null' }), null);
});
