// Demo page logic (bundled to src/imaccess/web/demo.js, loaded by index.html).
// Log in as a user id (token from /dev-token), chat with a peer id, see acks and the transport.
// Query: ?transport=websocket forces the fallback; ?user=N&peer=M logs in at once.
import { type ChatMessage, ImaccessClient, type TransportKind } from './index.js';

interface DemoState {
  client: ImaccessClient | null;
  received: ChatMessage[];
  acked: string[];
  logs: string[];
  transport: TransportKind | null;
  state: string;
  stopped: string | null;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const forced = params.get('transport');
const demo: DemoState = { client: null, received: [], acked: [], logs: [], transport: null, state: 'idle', stopped: null };
(window as unknown as { demo: DemoState }).demo = demo;

function log(line: string): void {
  demo.logs.push(line);
  const el = $('log');
  el.textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`;
  el.scrollTop = el.scrollHeight;
}

function bubble(kind: 'in' | 'out', who: string, text: string, status = ''): HTMLElement {
  const li = document.createElement('li');
  li.className = `msg ${kind}`;
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = who;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  const tick = document.createElement('span');
  tick.className = 'status';
  tick.textContent = status;
  li.append(meta, body, tick);
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

function showTransport(): void {
  const t = demo.client?.transport ?? null;
  demo.transport = t;
  const el = $('transport');
  el.textContent = t ?? '—';
  el.dataset.transport = t ?? '';
}

async function login(userId: number): Promise<void> {
  demo.client?.close();
  const client = new ImaccessClient({
    config: '/dev-config.json',
    token: async () => {
      const r = await fetch(`/dev-token?user_id=${userId}`, { cache: 'no-store' });
      if (!r.ok) throw new Error(`dev-token: HTTP ${r.status}`);
      return (await r.json()).token as string;
    },
    transport: forced === 'websocket' || forced === 'webtransport' ? forced : 'auto',
    log,
  });
  demo.client = client;
  client.on('state', (s) => {
    demo.state = s;
    $('state').textContent = s;
    showTransport();
  });
  client.on('connected', ({ transport, auth }) => {
    log(`connected: ${transport}, node ${auth.nodeId}, cursor ${client.lastSeq}`);
    showTransport();
  });
  client.on('stopped', (e) => { demo.stopped = e.message; log(`stopped: ${e.message}`); });
  client.on('message', (m) => {
    demo.received.push(m);
    const mine = m.fromUser === client.userId;
    bubble(mine ? 'out' : 'in', mine ? `me → ${m.toUser}` : `from ${m.fromUser}`, m.content, mine ? '✓' : `#${m.seq}`);
  });
  client.on('broadcast', (m) => bubble('in', 'broadcast', m.content));
  $('me').textContent = String(userId);
  $('chat').hidden = false;
  try {
    await client.connect();
  } catch (e) {
    log(`connect failed: ${(e as Error).message}`);
  }
}

async function send(): Promise<void> {
  const client = demo.client;
  const to = Number(($('peer') as HTMLInputElement).value);
  const input = $('text') as HTMLInputElement;
  const text = input.value;
  if (!client || !text || !(to > 0)) return;
  input.value = '';
  const li = bubble('out', `me → ${to}`, text, '…');
  try {
    const ack = await client.send(to, text);
    demo.acked.push(ack.msgId);
    li.querySelector('.status')!.textContent = '✓';
    li.classList.add('acked');
    li.dataset.msgId = ack.msgId;
  } catch (e) {
    li.querySelector('.status')!.textContent = '✗';
    log(`send failed: ${(e as Error).message}`);
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = Number(($('user') as HTMLInputElement).value);
  if (id > 0) void login(id);
});
$('send-form').addEventListener('submit', (ev) => { ev.preventDefault(); void send(); });
$('forced').textContent = forced ? `forced: ${forced}` : 'auto (WebTransport, else WebSocket)';

const autoUser = Number(params.get('user'));
if (params.get('peer')) ($('peer') as HTMLInputElement).value = params.get('peer')!;
if (autoUser > 0) {
  ($('user') as HTMLInputElement).value = String(autoUser);
  void login(autoUser);
}
