// Framing and typed encode/decode of the imaccess wire protocol (PROTOCOL.md).
//
//   frame = length:u32 BE | msg_type:u16 BE | body   (length = 2 + len(body))
//   body  = FlatBuffer Packet { seq, msg_type, timestamp, payload: nested table }
//
// 64-bit fields are bigint in the generated code; the typed views below convert user ids,
// seqs and timestamps to number (exact below 2^53, which covers every id and ms timestamp).
import * as flatbuffers from 'flatbuffers';
import {
  AuthRequest, AuthResponse, ChatMessage as FbChatMessage, Delivery, Error as FbError, Kick as FbKick,
  MessageAck as FbMessageAck, MsgType, Notice as FbNotice, NoticeKind, Packet, SyncRequest,
  SyncResponse as FbSyncResponse,
} from './gen/im/protocol.js';

export { Delivery, MsgType, NoticeKind };

export const HEADER_SIZE = 6;
export const MAX_FRAME_SIZE = 65536;

export class FrameError extends Error {
  constructor(public readonly code: number, message: string) { super(message); }
}

export interface Frame { type: number; seq: number; timestamp: number; payload: Uint8Array }

/** Incremental decoder: feed chunks as they arrive (split or packed), get whole frames. */
export class FrameDecoder {
  private buf = new Uint8Array(0);
  constructor(private readonly maxFrameSize = MAX_FRAME_SIZE) {}

  get buffered(): number { return this.buf.length; }

  push(chunk: Uint8Array): Frame[] {
    if (this.buf.length === 0) {
      this.buf = chunk.slice();
    } else {
      const joined = new Uint8Array(this.buf.length + chunk.length);
      joined.set(this.buf, 0);
      joined.set(chunk, this.buf.length);
      this.buf = joined;
    }
    const frames: Frame[] = [];
    let pos = 0;
    while (this.buf.length - pos >= 4) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + pos);
      const length = view.getUint32(0, false);
      if (length > this.maxFrameSize) throw new FrameError(4005, `frame length ${length} too large`);
      if (length < 2) throw new FrameError(4004, `frame length ${length} < 2`);
      if (this.buf.length - pos < 4 + length) break;
      const type = view.getUint16(4, false);
      const body = this.buf.slice(pos + HEADER_SIZE, pos + 4 + length);  // own, aligned copy
      frames.push(decodeBody(type, body));
      pos += 4 + length;
    }
    this.buf = pos === 0 ? this.buf : this.buf.slice(pos);
    return frames;
  }
}

export function decodeBody(headerType: number, body: Uint8Array): Frame {
  if (body.length < 8) throw new FrameError(4004, 'body under 8 bytes');
  const packet = Packet.getRootAsPacket(new flatbuffers.ByteBuffer(body));
  const type = packet.msgType() & 0xffff;
  if (type !== headerType) throw new FrameError(4004, `header type ${headerType} != packet type ${type}`);
  const payload = packet.payloadArray();
  return {
    type,
    seq: Number(packet.seq()),
    timestamp: Number(packet.timestamp()),
    payload: payload ? payload.slice() : new Uint8Array(0),
  };
}

/** A whole frame: header + Packet carrying `payload` (already a serialized table, or empty). */
export function encodeFrame(type: number, seq: number, payload?: Uint8Array, timestamp = 0): Uint8Array {
  const b = new flatbuffers.Builder(64 + (payload?.length ?? 0));
  const payloadOffset = payload && payload.length ? Packet.createPayloadVector(b, payload) : 0;
  Packet.startPacket(b);
  Packet.addSeq(b, BigInt(seq));
  Packet.addMsgType(b, type as MsgType);
  Packet.addTimestamp(b, BigInt(timestamp));
  if (payloadOffset) Packet.addPayload(b, payloadOffset);
  b.finish(Packet.endPacket(b));
  const body = b.asUint8Array();
  const out = new Uint8Array(HEADER_SIZE + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 2 + body.length, false);
  view.setUint16(4, type, false);
  out.set(body, HEADER_SIZE);
  return out;
}

// ---- typed payloads ---------------------------------------------------------------------

export interface AuthInfo {
  code: number; userId: number; message: string; connId: string; nodeId: string;
  heartbeatIntervalMs: number; heartbeatTimeoutMs: number;
}
export interface ChatMessage {
  msgId: string; fromUser: number; toUser: number; content: string; contentType: number;
  timestamp: number; seq: number; delivery: Delivery; groupId: number;
}
export interface MessageAckInfo { msgId: string; code: number; serverSeq: number; timestamp: number; duplicate: boolean }
export interface SyncResult { code: number; messages: ChatMessage[]; maxSeq: number; hasMore: boolean }
export interface KickInfo { code: number; reason: string }
export interface ErrorInfo { code: number; message: string }
export interface NoticeInfo { kind: number; code: number; message: string; reconnectAfterMs: number }

const bb = (p: Uint8Array) => new flatbuffers.ByteBuffer(p);
function finish(b: flatbuffers.Builder, root: number): Uint8Array { b.finish(root); return b.asUint8Array(); }

export function encodeAuth(token: string, deviceId: string, platform: string): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const t = b.createString(token), d = b.createString(deviceId), p = b.createString(platform);
  return finish(b, AuthRequest.createAuthRequest(b, t, d, p));
}

export function encodeChat(msgId: string, toUser: number, content: string, contentType = 0): Uint8Array {
  const b = new flatbuffers.Builder(128 + content.length * 3);
  const id = b.createString(msgId), c = b.createString(content);
  FbChatMessage.startChatMessage(b);
  FbChatMessage.addMsgId(b, id);
  FbChatMessage.addToUser(b, BigInt(toUser));
  FbChatMessage.addContent(b, c);
  if (contentType) FbChatMessage.addContentType(b, contentType);
  return finish(b, FbChatMessage.endChatMessage(b));
}

export function encodeSync(sinceSeq: number, limit = 0): Uint8Array {
  const b = new flatbuffers.Builder(32);
  return finish(b, SyncRequest.createSyncRequest(b, BigInt(sinceSeq), limit));
}

function needTable(p: Uint8Array): void {
  if (p.length < 4) throw new FrameError(4004, 'payload shorter than 4 bytes');
}

export function decodeAuthResponse(p: Uint8Array): AuthInfo {
  needTable(p);
  const r = AuthResponse.getRootAsAuthResponse(bb(p));
  return {
    code: r.code(), userId: Number(r.userId()), message: r.message() ?? '', connId: r.connId().toString(),
    nodeId: r.nodeId() ?? '', heartbeatIntervalMs: r.heartbeatIntervalMs(), heartbeatTimeoutMs: r.heartbeatTimeoutMs(),
  };
}

function chatFrom(m: FbChatMessage): ChatMessage {
  return {
    msgId: m.msgId() ?? '', fromUser: Number(m.fromUser()), toUser: Number(m.toUser()), content: m.content() ?? '',
    contentType: m.contentType(), timestamp: Number(m.timestamp()), seq: Number(m.seq()), delivery: m.delivery(),
    groupId: Number(m.groupId()),
  };
}

export function decodeChat(p: Uint8Array): ChatMessage {
  needTable(p);
  return chatFrom(FbChatMessage.getRootAsChatMessage(bb(p)));
}

export function decodeMessageAck(p: Uint8Array): MessageAckInfo {
  needTable(p);
  const a = FbMessageAck.getRootAsMessageAck(bb(p));
  return { msgId: a.msgId() ?? '', code: a.code(), serverSeq: Number(a.serverSeq()), timestamp: Number(a.timestamp()), duplicate: a.duplicate() };
}

export function decodeSyncResponse(p: Uint8Array): SyncResult {
  needTable(p);
  const r = FbSyncResponse.getRootAsSyncResponse(bb(p));
  const messages: ChatMessage[] = [];
  for (let i = 0; i < r.messagesLength(); i++) messages.push(chatFrom(r.messages(i)!));
  return { code: r.code(), messages, maxSeq: Number(r.maxSeq()), hasMore: r.hasMore() };
}

export function decodeKick(p: Uint8Array): KickInfo {
  needTable(p);
  const k = FbKick.getRootAsKick(bb(p));
  return { code: k.code(), reason: k.reason() ?? '' };
}

export function decodeError(p: Uint8Array): ErrorInfo {
  needTable(p);
  const e = FbError.getRootAsError(bb(p));
  return { code: e.code(), message: e.message() ?? '' };
}

export function decodeNotice(p: Uint8Array): NoticeInfo {
  needTable(p);
  const n = FbNotice.getRootAsNotice(bb(p));
  return { kind: n.kind(), code: n.code(), message: n.message() ?? '', reconnectAfterMs: n.reconnectAfterMs() };
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, x => x.toString(16).padStart(2, '0')).join('');
}
