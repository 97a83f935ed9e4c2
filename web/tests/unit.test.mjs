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
