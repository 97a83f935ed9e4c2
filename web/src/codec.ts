// Framing and typed encode/decode of the imaccess wire protocol (PROTOCOL.md).
//
//   frame = length:u32 BE | msg_type:u16 BE | body   (length = 2 + len(body))
//   body  = FlatBuffer Packet { seq, msg_type, timestamp, payload: nested table }
//
// 64-bit fields are bigint in the generated code; the typed views below convert user ids,
// seqs and timestamps to number (exact below 2^53, which covers every id and ms timestamp).
import * as flatbuffers from 'flatbuffers';
import {
  AuthRequest, AuthResponse, ChatMessage as FbChatMessage, Delivery, Error as FbError, FileAck as FbFileAck,
  FileHeader as FbFileHeader, FileOffer as FbFileOffer, FileRequest as FbFileRequest, Kick as FbKick,
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
    for (;;) {
      const taken = takeFrame(this.buf, pos, this.maxFrameSize);
      if (!taken) break;
      frames.push(taken.frame);
      pos = taken.end;
    }
    this.buf = pos === 0 ? this.buf : this.buf.slice(pos);
    return frames;
  }
}

/** The whole frame starting at `pos` of `buf` and where it ends, or null if incomplete. */
export function takeFrame(buf: Uint8Array, pos = 0, maxFrameSize = MAX_FRAME_SIZE): { frame: Frame; end: number } | null {
  if (buf.length - pos < 4) return null;
  const view = new DataView(buf.buffer, buf.byteOffset + pos);
  const length = view.getUint32(0, false);
  if (length > maxFrameSize) throw new FrameError(4005, `frame length ${length} too large`);
  if (length < 2) throw new FrameError(4004, `frame length ${length} < 2`);
  if (buf.length - pos < 4 + length) return null;
  const type = view.getUint16(4, false);
  const body = buf.slice(pos + HEADER_SIZE, pos + 4 + length);  // own, aligned copy
  return { frame: decodeBody(type, body), end: pos + 4 + length };
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

// ---- files (PROTOCOL.md "Files"): 64-bit sizes as number (exact below 2^53 bytes) ------------

export interface FileOfferInfo {
  msgId: string; toUser: number; name: string; size: number; mimeType: string; sha256: Uint8Array;
}
export interface FileAckInfo {
  code: number; message: string; fileId: string; msgId: string; serverSeq: number; timestamp: number;
}
export interface FileRequestInfo { fileId: string; offset: number }
export interface FileHeaderInfo {
  code: number; message: string; fileId: string; name: string; size: number; mimeType: string;
  sha256: Uint8Array; offset: number;
}

const bytesOf = (a: Uint8Array | null) => (a ? a.slice() : new Uint8Array(0));
const optString = (b: flatbuffers.Builder, s: string | undefined) => (s ? b.createString(s) : 0);

export function encodeFileOffer(o: FileOfferInfo): Uint8Array {
  const b = new flatbuffers.Builder(128 + o.name.length * 3 + o.msgId.length + o.mimeType.length);
  const id = b.createString(o.msgId), name = b.createString(o.name), mime = optString(b, o.mimeType);
  const sha = FbFileOffer.createSha256Vector(b, o.sha256);
  FbFileOffer.startFileOffer(b);
  FbFileOffer.addMsgId(b, id);
  FbFileOffer.addToUser(b, BigInt(o.toUser));
  FbFileOffer.addName(b, name);
  FbFileOffer.addSize(b, BigInt(o.size));
  if (mime) FbFileOffer.addMimeType(b, mime);
  FbFileOffer.addSha256(b, sha);
  return finish(b, FbFileOffer.endFileOffer(b));
}

export function decodeFileOffer(p: Uint8Array): FileOfferInfo {
  needTable(p);
  const o = FbFileOffer.getRootAsFileOffer(bb(p));
  return {
    msgId: o.msgId() ?? '', toUser: Number(o.toUser()), name: o.name() ?? '', size: Number(o.size()),
    mimeType: o.mimeType() ?? '', sha256: bytesOf(o.sha256Array()),
  };
}

export function encodeFileAck(a: Partial<FileAckInfo>): Uint8Array {
  const b = new flatbuffers.Builder(128);
  const message = optString(b, a.message), fileId = optString(b, a.fileId), msgId = optString(b, a.msgId);
  return finish(b, FbFileAck.createFileAck(b, a.code ?? 0, message, fileId, msgId, BigInt(a.serverSeq ?? 0),
    BigInt(a.timestamp ?? 0)));
}

export function decodeFileAck(p: Uint8Array): FileAckInfo {
  needTable(p);
  const a = FbFileAck.getRootAsFileAck(bb(p));
  return {
    code: a.code(), message: a.message() ?? '', fileId: a.fileId() ?? '', msgId: a.msgId() ?? '',
    serverSeq: Number(a.serverSeq()), timestamp: Number(a.timestamp()),
  };
}

export function encodeFileRequest(fileId: string, offset = 0): Uint8Array {
  const b = new flatbuffers.Builder(64 + fileId.length * 3);
  return finish(b, FbFileRequest.createFileRequest(b, b.createString(fileId), BigInt(offset)));
}

export function decodeFileRequest(p: Uint8Array): FileRequestInfo {
  needTable(p);
  const r = FbFileRequest.getRootAsFileRequest(bb(p));
  return { fileId: r.fileId() ?? '', offset: Number(r.offset()) };
}

export function encodeFileHeader(h: Partial<FileHeaderInfo>): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const message = optString(b, h.message), fileId = optString(b, h.fileId), name = optString(b, h.name);
  const mime = optString(b, h.mimeType);
  const sha = h.sha256 ? FbFileHeader.createSha256Vector(b, h.sha256) : 0;
  return finish(b, FbFileHeader.createFileHeader(b, h.code ?? 0, message, fileId, name, BigInt(h.size ?? 0), mime,
    sha, BigInt(h.offset ?? 0)));
}

export function decodeFileHeader(p: Uint8Array): FileHeaderInfo {
  needTable(p);
  const h = FbFileHeader.getRootAsFileHeader(bb(p));
  return {
    code: h.code(), message: h.message() ?? '', fileId: h.fileId() ?? '', name: h.name() ?? '',
    size: Number(h.size()), mimeType: h.mimeType() ?? '', sha256: bytesOf(h.sha256Array()),
    offset: Number(h.offset()),
  };
}

/** The JSON content of a file message (ChatMessage.contentType 1), as PROTOCOL.md gives it. */
export interface FileInfo { fileId: string; name: string; size: number; mimeType: string; sha256: string }

export const CONTENT_TYPE_FILE = 1;

/** The file a chat message announces, or null if it is not a (well-formed) file message. */
export function fileInfo(message: Pick<ChatMessage, 'contentType' | 'content'>): FileInfo | null {
  if (message.contentType !== CONTENT_TYPE_FILE) return null;
  let j: unknown;
  try { j = JSON.parse(message.content); } catch { return null; }
  if (typeof j !== 'object' || j === null) return null;
  const o = j as Record<string, unknown>;
  if (typeof o.file_id !== 'string' || !o.file_id) return null;
  return {
    fileId: o.file_id,
    name: typeof o.name === 'string' ? o.name : '',
    size: typeof o.size === 'number' ? o.size : 0,
    mimeType: typeof o.mime_type === 'string' ? o.mime_type : '',
    sha256: typeof o.sha256 === 'string' ? o.sha256.toLowerCase() : '',
  };
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, x => x.toString(16).padStart(2, '0')).join('');
}
