// ImaccessClient: the browser SDK. WebTransport first (serverCertificateHashes from the
// config), WebSocket as fallback, the PROTOCOL.md cursor, acks, heartbeats and reconnects.
import {
  type AuthInfo, type ChatMessage, Delivery, encodeAuth, encodeChat, encodeFileOffer, encodeFileRequest,
  encodeFrame, encodeSync, decodeAuthResponse, decodeChat, decodeError, decodeFileAck, decodeFileHeader,
  decodeKick, decodeMessageAck, decodeNotice, decodeSyncResponse, type Frame, FrameDecoder, FrameError,
  type MessageAckInfo, MsgType, type NoticeInfo, type SyncResult, takeFrame, toHex,
} from './codec.js';
import { Sha256 } from './sha256.js';

export * from './codec.js';
export { Sha256, sha256 } from './sha256.js';

export type TransportKind = 'webtransport' | 'websocket';
export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'stopped';

/** What `GET /dev-config.json` returns (snake_case as served), or the same in camelCase. */
export interface ServerConfig {
  webtransport_url?: string; websocket_url?: string; cert_sha256?: string; node_id?: string;
}

export interface ClientOptions {
  /** A ServerConfig, or a URL to fetch it from (fetched again before every connect). */
  config: ServerConfig | string;
  /** The JWT, or a callback that returns a fresh one (called before each connect). */
  token: string | (() => string | Promise<string>);
  /** Stable per installation; default: one per browser tab (kept in sessionStorage). */
  deviceId?: string;
  platform?: string;
  /** 'auto' (WebTransport, else WebSocket), or force one. */
  transport?: 'auto' | TransportKind;
  /** Where last_seq is kept; default localStorage, null for none. */
  storage?: Pick<Storage, 'getItem' | 'setItem'> | null;
  ackTimeoutMs?: number;
  sendAttempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  connectTimeoutMs?: number;
  syncLimit?: number;
  /** Deliver copies of messages this client sent itself to `message` listeners too. */
  deliverOwnEchoes?: boolean;
  log?: (line: string) => void;
}

export class ImaccessError extends Error {
  constructor(public readonly code: number, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ImaccessError';
  }
}

export interface CloseInfo { code: number; reason: string; reconnectAfterMs?: number }

/** Request-level codes of file transfers (PROTOCOL.md "Codes" and "Files"). */
export const FileCode = {
  INVALID_MESSAGE: 1002, UNAVAILABLE: 1005, FILE_TOO_LARGE: 1010, FILE_HASH_MISMATCH: 1011,
  FILE_SIZE_MISMATCH: 1012, FILE_NOT_FOUND: 1013, TOO_MANY_TRANSFERS: 1014, TRANSFER_STALLED: 1015,
  NOT_SUPPORTED_ON_TRANSPORT: 1016, INVALID_OFFER: 1017,
} as const;

export interface SendFileOptions {
  /** Id of the chat message that announces the file (default: a random UUID). */
  msgId?: string;
  /** Default: the Blob's `type`. */
  mimeType?: string;
  /** Default: the File's `name`, else 'file'. */
  name?: string;
  /** Called as content is handed to the stream (bytes so far, file size). */
  onProgress?: (sentBytes: number, total: number) => void;
  /** Aborting resets the upload stream; the server keeps nothing and sends no FileAck. */
  signal?: AbortSignal;
}

/** The FileAck of a stored and announced file, with what was offered. */
export interface FileSent {
  fileId: string; msgId: string; serverSeq: number; timestamp: number;
  name: string; size: number; mimeType: string; sha256: string;
}

export interface FetchFileOptions {
  /** Resume from this byte (the returned data starts there; the hash is not checked then). */
  offset?: number;
  /** Called as content arrives (bytes of the file up to here, counting `offset`; file size). */
  onProgress?: (received: number, total: number) => void;
  /** Aborting stops the download stream (STOP_SENDING). */
  signal?: AbortSignal;
}

export interface FetchedFile {
  fileId: string; name: string; mimeType: string;
  /** The whole file's size and SHA-256 (hex), as the server stored it. */
  size: number; sha256: string;
  /** Where `data` starts in the file. */
  offset: number;
  data: Blob;
}

interface Events {
  message: ChatMessage;
  broadcast: ChatMessage;
  state: State;
  connected: { transport: TransportKind; auth: AuthInfo };
  disconnected: CloseInfo;
  stopped: ImaccessError;
  ack: MessageAckInfo;
  notice: NoticeInfo;
  log: string;
}
type Listener<T> = (value: T) => void;

// ---- links: one connection over either transport ---------------------------------------

interface Channel { write(frame: Uint8Array): void }

interface Link {
  readonly kind: TransportKind;
  readonly control: Channel;
  /** The message stream (WebTransport) or the control channel again (WebSocket). */
  message: Channel | null;
  openMessageStream(): Promise<Channel>;
  /** A new unidirectional stream for an upload (WebTransport only). */
  openUploadStream?(): Promise<WritableStream<Uint8Array>>;
  close(code?: number, reason?: string): void;
}

interface LinkHandlers {
  frame(link: Link, frame: Frame, channel: Channel): void;
  lost(link: Link, info: CloseInfo): void;
  /** A server-opened unidirectional stream: its first frame, then the rest of the stream. */
  download(link: Link, frame: Frame, reader: ReadableStreamDefaultReader<Uint8Array>, rest: Uint8Array): void;
}

function b64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    p.then(v => { clearTimeout(t); resolve(v); }, e => { clearTimeout(t); reject(e); });
  });
}

async function openWebTransport(url: string, certSha256: string | undefined, h: LinkHandlers,
  timeoutMs: number): Promise<Link> {
  const options: WebTransportOptions = {};
  if (certSha256) {
    options.serverCertificateHashes = [{ algorithm: 'sha-256', value: b64ToBytes(certSha256) as BufferSource }];
  }
  const wt = new WebTransport(url, options);
  wt.closed.catch(() => undefined);
  try {
    await withTimeout(wt.ready, timeoutMs, 'WebTransport handshake');
  } catch (e) {
    try { wt.close(); } catch { /* already failed */ }
    throw e;
  }
  let lost = false;
  const lose = (info: CloseInfo) => {
    if (lost) return;
    lost = true;
    try { wt.close({ closeCode: 0, reason: '' }); } catch { /* closed */ }
    h.lost(link, info);
  };
  const openStream = async (): Promise<Channel> => {
    const stream = await wt.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const channel: Channel = {
      write(frame) { writer.write(frame).catch(() => lose({ code: 0, reason: 'stream write failed' })); },
    };
    (async () => {
      const reader = stream.readable.getReader();
      const decoder = new FrameDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const f of decoder.push(value)) h.frame(link, f, channel);
        }
        lose({ code: 0, reason: 'stream ended' });
      } catch (e) {
        lose(e instanceof FrameError ? { code: e.code, reason: e.message } : { code: 0, reason: String(e) });
      }
    })();
    return channel;
  };
  const link: Link = {
    kind: 'webtransport',
    control: null as unknown as Channel,
    message: null,
    async openMessageStream() { link.message = await openStream(); return link.message; },
    async openUploadStream() { return await wt.createUnidirectionalStream() as WritableStream<Uint8Array>; },
    close(code = 0, reason = '') { lost = true; try { wt.close({ closeCode: code, reason }); } catch { /* closed */ } },
  };
  (link as { control: Channel }).control = await openStream();
  // downloads: one reader of the server's unidirectional streams for the whole session
  const readHead = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.getReader();
    let buf = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;  // ended before its first frame: nothing to do
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf, 0);
        joined.set(value, buf.length);
        buf = joined;
        const taken = takeFrame(buf);
        if (taken) { h.download(link, taken.frame, reader, buf.slice(taken.end)); return; }
      }
    } catch {
      reader.cancel().catch(() => undefined);  // a bad first frame or a reset: drop this stream
    }
  };
  (async () => {
    const streams = (wt.incomingUnidirectionalStreams as ReadableStream<ReadableStream<Uint8Array>>).getReader();
    try {
      for (;;) {
        const { value, done } = await streams.read();
        if (done) return;
        void readHead(value);
      }
    } catch { /* the session is gone */ }
  })();
  wt.closed.then(
    (info) => lose({ code: info?.closeCode ?? 0, reason: info?.reason ?? 'session closed' }),
    (e) => lose({ code: 0, reason: String(e) }));
  return link;
}

/** The gateway's WebSocket close codes: 3000-4499 ours unchanged; 45yz → 1xyz, 46yz → 2xyz. */
export function fromWebSocketCloseCode(code: number): number {
  if (code >= 4500 && code <= 4699) return (Math.floor((code - 4500) / 100) + 1) * 1000 + (code % 100);
  if (code >= 3000 && code <= 4999) return code;
  return 0;
}

async function openWebSocket(url: string, h: LinkHandlers, timeoutMs: number): Promise<Link> {
  // Offer the 'imaccess' subprotocol (the gateway accepts it; some builds require it).
  const ws = new WebSocket(url, ['imaccess']);
  ws.binaryType = 'arraybuffer';
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('WebSocket failed to open'));
    ws.onclose = (ev) => reject(new Error(`WebSocket closed while opening (${ev.code})`));
  }), timeoutMs, 'WebSocket open').catch((e) => { try { ws.close(); } catch { /* */ } throw e; });
  let lost = false;
  const lose = (info: CloseInfo) => {
    if (lost) return;
    lost = true;
    try { ws.close(); } catch { /* closed */ }
    h.lost(link, info);
  };
  const channel: Channel = {
    write(frame) { if (ws.readyState === WebSocket.OPEN) ws.send(frame); else lose({ code: 0, reason: 'socket not open' }); },
  };
  const decoder = new FrameDecoder();
  ws.onmessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer)) return;
    try {
      for (const f of decoder.push(new Uint8Array(ev.data))) h.frame(link, f, channel);
    } catch (e) {
      lose(e instanceof FrameError ? { code: e.code, reason: e.message } : { code: 0, reason: String(e) });
    }
  };
  ws.onerror = () => undefined;
  ws.onclose = (ev) => lose({ code: fromWebSocketCloseCode(ev.code), reason: ev.reason || 'socket closed' });
  const link: Link = {
    kind: 'websocket',
    control: channel,
    message: channel,
    async openMessageStream() { return channel; },
    close() { lost = true; try { ws.close(1000); } catch { /* closed */ } },
  };
  return link;
}

// ---- the client ---------------------------------------------------------------------------

interface DownloadStream { reader: ReadableStreamDefaultReader<Uint8Array>; rest: Uint8Array }
interface Pending {
  resolve(f: Frame, stream?: DownloadStream): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Also takes a FileHeader arriving as the first frame of a download stream. */
  download?: boolean;
}

class LinkLost extends Error {}

function randomId(): string {
  if (typeof globalThis.crypto?.randomUUID === 'function') return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function defaultDeviceId(): string {
  try {
    const key = 'imaccess:device_id';
    let id = sessionStorage.getItem(key);
    if (!id) { id = `web-${randomId()}`; sessionStorage.setItem(key, id); }
    return id;
  } catch {
    return `web-${randomId()}`;
  }
}

const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));

const abortError = (signal: AbortSignal): Error =>
  signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError');

/** Up to this size a file is hashed by WebCrypto in one piece; above, chunk by chunk. */
const WHOLE_HASH_LIMIT = 32 * 1024 * 1024;

async function hashBlob(blob: Blob, signal?: AbortSignal): Promise<Uint8Array> {
  if (blob.size <= WHOLE_HASH_LIMIT && globalThis.crypto?.subtle) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
  }
  const h = new Sha256();
  const reader = blob.stream().getReader();
  for (;;) {
    if (signal?.aborted) { reader.cancel().catch(() => undefined); throw abortError(signal); }
    const { value, done } = await reader.read();
    if (done) return h.digest();
    h.update(value);
  }
}

export class ImaccessClient {
  readonly deviceId: string;
  private readonly opts: Required<Omit<ClientOptions, 'deviceId' | 'storage' | 'log'>> & Pick<ClientOptions, 'log'>;
  private readonly storage: Pick<Storage, 'getItem' | 'setItem'> | null;
  private listeners = new Map<keyof Events, Set<Listener<never>>>();
  private link: Link | null = null;
  private _state: State = 'idle';
  private _transport: TransportKind | null = null;
  private _auth: AuthInfo | null = null;
  private nextSeq = 1;
  private pending = new Map<number, Pending>();
  private last = 0;
  private cursorKey: string | null = null;
  private sentIds = new Set<string>();
  private syncing = false;
  private syncAgain = false;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastHeard = 0;
  private lastWritten = 0;
  private attempt = 0;
  private tokenRetries = 0;
  private everConnected = false;
  private webTransportBroken = false;
  private inband: CloseInfo | null = null;
  private connectedWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private supervisor: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private stopError: ImaccessError | null = null;
  private queue: ChatMessage[] = [];
  private iterators = 0;
  private queueWaiters: Array<(m: ChatMessage | null) => void> = [];

  constructor(options: ClientOptions) {
    this.opts = {
      platform: 'web', transport: 'auto', ackTimeoutMs: 5000, sendAttempts: 5, backoffBaseMs: 200,
      backoffCapMs: 30000, connectTimeoutMs: 5000, syncLimit: 0, deliverOwnEchoes: false, ...options,
    } as ImaccessClient['opts'];
    this.deviceId = options.deviceId || defaultDeviceId();
    this.storage = options.storage !== undefined ? options.storage
      : (typeof localStorage !== 'undefined' ? localStorage : null);
  }

  /** The transport of the current connection (null when not connected). */
  get transport(): TransportKind | null { return this._transport; }
  get state(): State { return this._state; }
  get auth(): AuthInfo | null { return this._auth; }
  get userId(): number | null { return this._auth?.userId ?? null; }
  /** The cursor: the highest inbox seq handed to the application. */
  get lastSeq(): number { return this.last; }

  on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, set = new Set());
    set.add(fn as Listener<never>);
    return () => set!.delete(fn as Listener<never>);
  }

  private emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try { (fn as Listener<Events[K]>)(value); } catch (e) { console.error(e); }
    }
  }

  private log(line: string): void {
    this.opts.log?.(line);
    this.emit('log', line);
  }

  private setState(s: State): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
  }

  /** Connect (and keep reconnecting). Resolves after the first AuthAck; rejects if it stops first. */
  connect(): Promise<void> {
    if (this._state === 'stopped') return Promise.reject(this.stopError!);
    const ready = this.whenConnected();
    if (!this.supervisor) this.supervisor = this.supervise();
    return ready;
  }

  /** Incoming messages as an async iterator (ends when the client stops). */
  async *messages(): AsyncGenerator<ChatMessage> {
    this.iterators++;
    try {
      for (;;) {
        if (this._state === 'stopped' && this.queue.length === 0) return;
        const m = this.queue.shift() ?? await new Promise<ChatMessage | null>(r => this.queueWaiters.push(r));
        if (m === null) return;
        yield m;
      }
    } finally {
      this.iterators--;
    }
  }

  /** Send a text message; resolves with the MessageAck (code 0). Retries with the same msg_id. */
  async send(to: number, content: string, opts: { msgId?: string; contentType?: number } = {}): Promise<MessageAckInfo> {
    const msgId = opts.msgId ?? randomId();
    this.rememberSent(msgId);
    const payload = encodeChat(msgId, to, content, opts.contentType ?? 0);
    let lastError: Error = new Error('not sent');
    for (let attempt = 0; attempt < this.opts.sendAttempts; attempt++) {
      if (attempt > 0) this.log(`resend ${msgId} (attempt ${attempt + 1}): ${lastError.message}`);
      try {
        await this.whenConnected();
        const reply = await this.request(MsgType.Message, payload, this.opts.ackTimeoutMs);
        if (reply.type === MsgType.Error) {
          const e = decodeError(reply.payload);
          throw new ImaccessError(e.code, e.message);
        }
        const ack = decodeMessageAck(reply.payload);
        this.emit('ack', ack);
        if (ack.code === 0) return ack;
        if (ack.code === 1003 || ack.code === 1005) {
          lastError = new ImaccessError(ack.code, 'not accepted yet');
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new ImaccessError(ack.code, `message ${msgId} refused`);
      } catch (e) {
        if (e instanceof ImaccessError) throw e;
        lastError = e as Error;  // timeout or link lost: resend the same msg_id
      }
    }
    throw new ImaccessError(1005, `no ack for ${msgId}: ${lastError.message}`);
  }

  /**
   * Upload a file to `toUser` on its own WebTransport unidirectional stream (PROTOCOL.md
   * "Files"): one FileOffer frame, the content, FIN. Resolves on the FileAck (code 0), when
   * the chat message announcing the file (contentType 1, see `fileInfo`) has been stored.
   * Rejects with an ImaccessError carrying the refusal's code; at once with 1016
   * NOT_SUPPORTED_ON_TRANSPORT over WebSocket; with the signal's reason when aborted (the
   * stream is reset, the server keeps nothing). Not retried: call again (same msgId) to retry.
   */
  async sendFile(toUser: number, file: Blob, opts: SendFileOptions = {}): Promise<FileSent> {
    const { signal } = opts;
    const notSupported = () => new ImaccessError(FileCode.NOT_SUPPORTED_ON_TRANSPORT,
      `files need WebTransport streams; this connection is ${this._transport}`);
    if (signal?.aborted) throw abortError(signal);
    if (this._state === 'connected' && !this.link?.openUploadStream) throw notSupported();
    const digest = await hashBlob(file, signal);
    if (signal?.aborted) throw abortError(signal);
    await this.whenConnected();
    const link = this.link;
    if (!link?.openUploadStream) throw notSupported();
    const msgId = opts.msgId ?? randomId();
    const name = opts.name || (file as Partial<File>).name || 'file';
    const mimeType = opts.mimeType ?? file.type ?? '';
    const size = file.size;
    const offer = encodeFileOffer({ msgId, toUser, name, size, mimeType, sha256: digest });
    this.rememberSent(msgId);
    const writable = await link.openUploadStream();
    if (this.link !== link) {  // reconnected meanwhile: seqs restarted on the new link
      writable.abort().catch(() => undefined);
      throw new LinkLost('connection lost before the upload started');
    }
    const writer = writable.getWriter();
    const seq = this.nextSeq++;
    const ack = this.expect(seq);
    let answered = false;
    const untilAnswered = ack.reply.then(() => { answered = true; }, () => { answered = true; });
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      writer.abort(signal!.reason).catch(() => undefined);  // RESET_STREAM
      ack.cancel(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let writeError: Error | null = null;
      try {
        await Promise.race([writer.ready, untilAnswered]);
        await writer.write(encodeFrame(MsgType.FileOffer, seq, offer, Date.now()));
        this.lastWritten = Date.now();
        const reader = file.stream().getReader();
        let sent = 0;
        try {
          while (!aborted && !answered) {
            const { value, done } = await reader.read();
            if (done) break;
            await Promise.race([writer.ready, untilAnswered]);  // backpressure
            if (aborted || answered) break;
            await writer.write(value);
            sent += value.length;
            opts.onProgress?.(sent, size);
          }
        } finally {
          reader.cancel().catch(() => undefined);
        }
        if (!aborted && !answered) {
          const closing = writer.close();  // FIN
          closing.catch(() => undefined);
          await Promise.race([closing, untilAnswered]);
        } else if (!aborted) {
          writer.abort().catch(() => undefined);  // refused before the end: stop sending
        }
      } catch (e) {
        writeError = e as Error;  // e.g. the server's STOP_SENDING: its FileAck tells why
      }
      if (aborted) throw abortError(signal!);
      ack.arm(this.opts.ackTimeoutMs * 2, 'FileAck');
      let frame: Frame;
      try {
        frame = (await ack.reply).frame;
      } catch (e) {
        if (aborted) throw abortError(signal!);
        throw writeError ?? e;
      }
      if (frame.type === MsgType.Error) {
        const e = decodeError(frame.payload);
        throw new ImaccessError(e.code, e.message);
      }
      if (frame.type !== MsgType.FileAck) throw new ImaccessError(4003, `unexpected reply ${frame.type} to FileOffer`);
      const a = decodeFileAck(frame.payload);
      if (a.code !== 0) throw new ImaccessError(a.code, a.message || `file ${name} refused`);
      return {
        fileId: a.fileId, msgId: a.msgId || msgId, serverSeq: a.serverSeq, timestamp: a.timestamp,
        name, size, mimeType, sha256: toHex(digest),
      };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Download a file (by the `fileId` of its message, see `fileInfo`): a FileRequest, then the
   * server's unidirectional stream with a FileHeader and the content. The SHA-256 of the whole
   * file is checked when `offset` is 0 (else 1011 FILE_HASH_MISMATCH); a refusal rejects with
   * its code (1013 not found, 1016 over WebSocket, ...).
   */
  async fetchFile(fileId: string, opts: FetchFileOptions = {}): Promise<FetchedFile> {
    const { signal } = opts;
    if (signal?.aborted) throw abortError(signal);
    await this.whenConnected();
    const seq = this.nextSeq++;
    const reply = this.expect(seq, true);
    let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
    const onAbort = () => {
      reply.cancel(abortError(signal!));
      reader?.cancel(signal!.reason).catch(() => undefined);  // STOP_SENDING
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      try {
        this.write(MsgType.FileRequest, seq, encodeFileRequest(fileId, opts.offset ?? 0));
      } catch (e) {
        reply.cancel(e as Error);
      }
      reply.arm(this.opts.ackTimeoutMs * 2, 'FileHeader');
      const { frame, stream } = await reply.reply;
      if (frame.type === MsgType.Error) {
        const e = decodeError(frame.payload);
        throw new ImaccessError(e.code, e.message);
      }
      if (frame.type !== MsgType.FileHeader) throw new ImaccessError(4003, `unexpected reply ${frame.type} to FileRequest`);
      const h = decodeFileHeader(frame.payload);
      if (h.code !== 0 || !stream) {
        stream?.reader.cancel().catch(() => undefined);
        throw new ImaccessError(h.code || 4003, h.message || `file ${fileId} refused`);
      }
      reader = stream.reader;
      const want = h.size - h.offset;
      const hash = h.offset === 0 ? new Sha256() : null;
      const chunks: Uint8Array[] = [];
      let received = 0;
      const take = (chunk: Uint8Array) => {
        if (!chunk.length) return;
        chunks.push(chunk);
        hash?.update(chunk);
        received += chunk.length;
        opts.onProgress?.(h.offset + received, h.size);
      };
      take(stream.rest);
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        if (received > want) break;
        const { value, done } = await reader.read();
        if (done) break;
        take(value);
      }
      if (signal?.aborted) throw abortError(signal);
      if (received !== want) {
        reader.cancel().catch(() => undefined);
        throw new ImaccessError(FileCode.FILE_SIZE_MISMATCH, `file ${fileId}: ${received} bytes after offset ${h.offset}, expected ${want}`);
      }
      const sha256 = toHex(h.sha256);
      if (hash && toHex(hash.digest()) !== sha256) {
        throw new ImaccessError(FileCode.FILE_HASH_MISMATCH, `file ${fileId}: SHA-256 differs from the header's`);
      }
      return {
        fileId: h.fileId || fileId, name: h.name, mimeType: h.mimeType, size: h.size, sha256, offset: h.offset,
        data: new Blob(chunks as BlobPart[], { type: h.mimeType }),
      };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Sync from the cursor until there is nothing more (also done after every connect). */
  async sync(): Promise<void> {
    if (this.syncing) { this.syncAgain = true; return; }
    this.syncing = true;
    try {
      let more = true;
      while (more) {
        this.syncAgain = false;
        const since = this.last;
        const reply = await this.request(MsgType.Sync, encodeSync(since, this.opts.syncLimit), this.opts.ackTimeoutMs * 2);
        if (reply.type !== MsgType.SyncAck) throw new Error(`unexpected reply ${reply.type} to Sync`);
        const page: SyncResult = decodeSyncResponse(reply.payload);
        if (page.code !== 0) {
          this.log(`sync refused (${page.code}); retrying`);
          await sleep(this.backoff(1));
          continue;
        }
        if (page.maxSeq < since) {
          this.log(`server inbox reset (max_seq ${page.maxSeq} < ${since}); syncing from 0`);
          this.setCursor(0);
          continue;
        }
        for (const m of page.messages) if (m.seq > this.last) this.deliver(m);
        more = page.hasMore || this.syncAgain;
      }
    } finally {
      this.syncing = false;
    }
  }

  /** Close for good. */
  close(): void {
    this.stop(new ImaccessError(0, 'closed by the application'), false);
  }

  // ---- internals ---------------------------------------------------------------------

  private whenConnected(): Promise<void> {
    if (this._state === 'connected') return Promise.resolve();
    if (this._state === 'stopped') return Promise.reject(this.stopError!);
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }

  private backoff(attempt: number): number {
    return Math.random() * Math.min(this.opts.backoffCapMs, this.opts.backoffBaseMs * 2 ** attempt);
  }

  private stop(error: ImaccessError, emit = true): void {
    if (this._state === 'stopped') return;
    this.stopError = error;
    this.setState('stopped');
    this.teardown(new LinkLost('stopped'));
    for (const w of this.connectedWaiters.splice(0)) w.reject(error);
    for (const w of this.queueWaiters.splice(0)) w(null);
    this.wake?.();
    if (emit) this.emit('stopped', error);
  }

  private teardown(reason: Error): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const link = this.link;
    this.link = null;
    this._transport = null;
    if (link) {
      link.close();
      this.linkEnders.get(link)?.({ code: 0, reason: reason.message });
    }
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(reason); }
    this.pending.clear();
  }

  private async supervise(): Promise<void> {
    while (this._state !== 'stopped') {
      this.setState(this.everConnected ? 'reconnecting' : 'connecting');
      this.inband = null;
      let lostInfo: CloseInfo;
      try {
        lostInfo = await this.runOnce();
      } catch (e) {
        lostInfo = e instanceof ImaccessError ? { code: e.code, reason: e.message } : { code: 0, reason: String((e as Error)?.message ?? e) };
      }
      if ((this._state as State) === 'stopped') return;
      const info = this.inband ?? lostInfo;
      this.teardown(new LinkLost(info.reason));
      this.emit('disconnected', info);
      this.log(`disconnected: ${info.code} ${info.reason}`);
      const range = Math.floor(info.code / 1000);
      if (range === 4) { this.stop(new ImaccessError(info.code, info.reason)); return; }
      if (range === 2) {
        if (typeof this.opts.token === 'function' && this.everConnected && this.tokenRetries < 3) {
          this.tokenRetries++;
        } else {
          this.stop(new ImaccessError(info.code, info.reason));
          return;
        }
      }
      const delay = info.reconnectAfterMs ?? this.backoff(this.attempt);
      this.attempt++;
      this.log(`reconnecting in ${Math.round(delay)} ms`);
      await new Promise<void>(r => { this.wake = r; setTimeout(r, delay); });
      this.wake = null;
    }
  }

  /** One connection: open, authenticate, sync; resolves with why it ended. */
  private async runOnce(): Promise<CloseInfo> {
    const config: ServerConfig = typeof this.opts.config === 'string'
      ? await (await fetch(this.opts.config, { cache: 'no-store' })).json()
      : this.opts.config;
    const token = typeof this.opts.token === 'function' ? await this.opts.token() : this.opts.token;
    let ended!: (info: CloseInfo) => void;
    const endedP = new Promise<CloseInfo>(r => { ended = r; });
    const handlers: LinkHandlers = {
      frame: (link, f, ch) => { if (link === this.link) this.onFrame(f, ch); },
      lost: (link, info) => { if (link === this.link || this.link === null) ended(info); },
      download: (link, f, reader, rest) => {
        if (link === this.link) this.onDownloadStream(f, { reader, rest });
        else reader.cancel().catch(() => undefined);
      },
    };
    const link = await this.openLink(config, handlers);
    this.linkEnders.set(link, ended);
    this.link = link;
    this._transport = link.kind;
    this.nextSeq = 1;
    this.lastHeard = Date.now();
    const authReply = await Promise.race([
      this.request(MsgType.Auth, encodeAuth(token, this.deviceId, this.opts.platform), 10000, link.control),
      endedP.then(info => { throw new ImaccessError(info.code, info.reason); }),
    ]);
    if (authReply.type !== MsgType.AuthAck) throw new ImaccessError(4003, `unexpected reply ${authReply.type} to Auth`);
    const auth = decodeAuthResponse(authReply.payload);
    if (auth.code !== 0) {
      this.inband = { code: auth.code, reason: auth.message };
      throw new ImaccessError(auth.code, auth.message);
    }
    this._auth = auth;
    this.loadCursor(auth.userId);
    if (link.kind === 'webtransport') {
      const ch = await link.openMessageStream();
      this.write(MsgType.Heartbeat, this.nextSeq++, undefined, ch);
    }
    this.attempt = 0;
    this.tokenRetries = 0;
    this.everConnected = true;
    this.startHeartbeat(auth.heartbeatIntervalMs || 30000);
    this.setState('connected');
    this.log(`connected over ${link.kind} as user ${auth.userId} (conn ${auth.connId} on ${auth.nodeId})`);
    this.emit('connected', { transport: link.kind, auth });
    for (const w of this.connectedWaiters.splice(0)) w.resolve();
    this.sync().catch(e => this.log(`sync failed: ${(e as Error).message}`));
    return endedP;
  }

  private async openLink(config: ServerConfig, h: LinkHandlers): Promise<Link> {
    const hasWT = typeof WebTransport !== 'undefined' && !!config.webtransport_url;
    const mode = this.opts.transport;
    if (mode === 'webtransport' || (mode === 'auto' && hasWT && !this.webTransportBroken)) {
      try {
        return await openWebTransport(config.webtransport_url!, config.cert_sha256, h, this.opts.connectTimeoutMs);
      } catch (e) {
        if (mode === 'webtransport' || !config.websocket_url) throw e;
        this.log(`WebTransport failed (${(e as Error).message}); falling back to WebSocket`);
        this.webTransportBroken = true;
      }
    }
    if (!config.websocket_url) throw new Error('no websocket_url in the server config');
    return openWebSocket(config.websocket_url, h, this.opts.connectTimeoutMs);
  }

  private loadCursor(userId: number): void {
    const key = `imaccess:last_seq:${userId}:${this.deviceId}`;
    if (key === this.cursorKey) return;
    this.cursorKey = key;
    const stored = Number(this.storage?.getItem(key) ?? 0);
    this.last = Number.isFinite(stored) && stored > 0 ? stored : 0;
  }

  private setCursor(seq: number): void {
    this.last = seq;
    if (this.cursorKey) try { this.storage?.setItem(this.cursorKey, String(seq)); } catch { /* quota */ }
  }

  private deliver(m: ChatMessage): void {
    this.setCursor(m.seq);
    const own = m.fromUser === this._auth?.userId && this.sentIds.has(m.msgId);
    if (own && !this.opts.deliverOwnEchoes) return;
    this.emit('message', m);
    if (this.iterators === 0) return;
    const waiter = this.queueWaiters.shift();
    if (waiter) waiter(m); else this.queue.push(m);
  }

  private rememberSent(msgId: string): void {
    this.sentIds.add(msgId);
    if (this.sentIds.size > 10000) this.sentIds.delete(this.sentIds.values().next().value!);
  }

  private write(type: number, seq: number, payload?: Uint8Array, channel?: Channel): void {
    const link = this.link;
    if (!link) throw new LinkLost('not connected');
    (channel ?? link.message ?? link.control).write(encodeFrame(type, seq, payload, Date.now()));
    this.lastWritten = Date.now();
  }

  private request(type: number, payload: Uint8Array | undefined, timeoutMs: number, channel?: Channel): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      if (!this.link) { reject(new LinkLost('not connected')); return; }
      const seq = this.nextSeq++;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`no reply to ${MsgType[type] ?? type} seq ${seq} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer });
      try {
        this.write(type, seq, payload, channel);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(e as Error);
      }
    });
  }

  /** Wait for the reply with `seq` (no timer until `arm`); `cancel` forgets it. */
  private expect(seq: number, download = false): {
    reply: Promise<{ frame: Frame; stream?: DownloadStream }>; arm(ms: number, what: string): void; cancel(e: Error): void;
  } {
    let resolve!: (v: { frame: Frame; stream?: DownloadStream }) => void;
    let reject!: (e: Error) => void;
    const reply = new Promise<{ frame: Frame; stream?: DownloadStream }>((res, rej) => { resolve = res; reject = rej; });
    reply.catch(() => undefined);  // the caller may be elsewhere when it fails
    const p: Pending = { resolve: (frame, stream) => resolve({ frame, stream }), reject, timer: undefined, download };
    this.pending.set(seq, p);
    return {
      reply,
      arm: (ms, what) => {
        if (this.pending.get(seq) !== p) return;
        clearTimeout(p.timer);
        p.timer = setTimeout(() => {
          if (this.pending.get(seq) === p) this.pending.delete(seq);
          reject(new Error(`no ${what} for seq ${seq} in ${ms} ms`));
        }, ms);
      },
      cancel: (e) => {
        if (this.pending.get(seq) === p) { this.pending.delete(seq); clearTimeout(p.timer); }
        reject(e);
      },
    };
  }

  private onDownloadStream(f: Frame, stream: DownloadStream): void {
    this.lastHeard = Date.now();
    const p = f.seq !== 0 ? this.pending.get(f.seq) : undefined;
    if (!p?.download || f.type !== MsgType.FileHeader) {
      this.log(`unexpected download stream (type ${f.type}, seq ${f.seq}); stopping it`);
      stream.reader.cancel().catch(() => undefined);
      return;
    }
    this.pending.delete(f.seq);
    clearTimeout(p.timer);
    p.resolve(f, stream);
  }

  private startHeartbeat(intervalMs: number): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const link = this.link!;
    this.heartbeatTimer = setInterval(() => {
      if (this.link !== link) return;
      if (Date.now() - this.lastHeard > 3 * intervalMs) {
        this.log('nothing heard for 3 heartbeat intervals; reconnecting');
        link.close();
        this.inband = { code: 0, reason: 'heartbeat lost' };
        this.linkLostNow(link, { code: 0, reason: 'heartbeat lost' });
        return;
      }
      try { this.write(MsgType.Heartbeat, this.nextSeq++, undefined, link.control); } catch { /* lost */ }
    }, intervalMs);
  }

  private linkEnders = new WeakMap<Link, (info: CloseInfo) => void>();
  private linkLostNow(link: Link, info: CloseInfo): void {
    this.linkEnders.get(link)?.(info);
  }

  private onFrame(f: Frame, channel: Channel): void {
    this.lastHeard = Date.now();
    if (f.seq !== 0) {
      const p = this.pending.get(f.seq);
      if (p && f.type !== MsgType.Heartbeat) {
        this.pending.delete(f.seq);
        clearTimeout(p.timer);
        p.resolve(f);
        return;
      }
      if (f.type === MsgType.Heartbeat) return;
    }
    try {
      switch (f.type) {
        case MsgType.Heartbeat: return;
        case MsgType.Message: return this.onPush(decodeChat(f.payload));
        case MsgType.Kick: {
          const k = decodeKick(f.payload);
          this.log(`kick ${k.code}: ${k.reason}`);
          this.inband = { code: k.code, reason: k.reason };
          return;
        }
        case MsgType.Error: {
          const e = decodeError(f.payload);
          this.log(`error ${e.code}: ${e.message}`);
          if (f.seq === 0) this.inband = { code: e.code, reason: e.message };
          return;
        }
        case MsgType.FileAck: {
          // seq 0: refused before its offer could be read (1014); the upload's own stream
          // was stopped, so that upload fails on its write
          const a = decodeFileAck(f.payload);
          this.log(`FileAck ${a.code} (${a.message}) for no running upload (seq ${f.seq})`);
          return;
        }
        case MsgType.Notice: {
          const n = decodeNotice(f.payload);
          this.emit('notice', n);
          if (n.kind === 1) {
            this.inband = { code: n.code || 3001, reason: n.message || 'draining', reconnectAfterMs: n.reconnectAfterMs };
          }
          return;
        }
        default:
          this.log(`ignored frame type ${f.type} seq ${f.seq} on ${channel === this.link?.control ? 'control' : 'message'}`);
      }
    } catch (e) {
      this.log(`bad frame: ${(e as Error).message}`);
    }
  }

  private onPush(m: ChatMessage): void {
    if (m.delivery === Delivery.Broadcast) { this.emit('broadcast', m); return; }
    if (m.seq === this.last + 1) this.deliver(m);
    else if (m.seq <= this.last) return;  // duplicate
    else {
      this.log(`gap: got seq ${m.seq}, have ${this.last}; syncing`);
      this.sync().catch(e => this.log(`sync failed: ${(e as Error).message}`));
    }
  }
}
