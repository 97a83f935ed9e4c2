// src/demo.ts
import { fileInfo, ImaccessClient } from "./imaccess.js";
var $ = (id) => document.getElementById(id);
var params = new URLSearchParams(location.search);
var forced = params.get("transport");
var demo = {
  client: null,
  received: [],
  acked: [],
  logs: [],
  transport: null,
  state: "idle",
  stopped: null,
  uploads: [],
  downloads: []
};
window.demo = demo;
function log(line) {
  demo.logs.push(line);
  const el = $("log");
  el.textContent += `${(/* @__PURE__ */ new Date()).toISOString().slice(11, 23)} ${line}
`;
  el.scrollTop = el.scrollHeight;
}
function bubble(kind, who, text, status = "") {
  const li = document.createElement("li");
  li.className = `msg ${kind}`;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = who;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  const tick = document.createElement("span");
  tick.className = "status";
  tick.textContent = status;
  li.append(meta, body, tick);
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}
function humanSize(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
function fileButton(li, info) {
  const body = li.querySelector(".text");
  body.textContent = "";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "file";
  button.dataset.fileId = info.fileId;
  button.textContent = `⬇ ${info.name} (${humanSize(info.size)})`;
  button.title = `${info.mimeType || "application/octet-stream"}, SHA-256 ${info.sha256}`;
  button.addEventListener("click", () => void download(info, li));
  body.append(button);
  li.classList.add("file-msg");
}
function progressBar(li) {
  let bar = li.querySelector("progress");
  if (!bar) {
    bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    li.querySelector(".text").append(bar);
  }
  return bar;
}
async function download(info, li) {
  const client = demo.client;
  if (!client) return;
  const d = { fileId: info.fileId, name: info.name, size: info.size, received: 0, state: "fetching" };
  demo.downloads.push(d);
  const bar = progressBar(li);
  const status = li.querySelector(".status");
  const shown = status.textContent;
  status.textContent = "…";
  try {
    const f = await client.fetchFile(info.fileId, {
      onProgress: (received, total) => {
        d.received = received;
        bar.value = total ? received / total : 1;
      }
    });
    d.sha256 = f.sha256;
    const url = URL.createObjectURL(f.data);
    const a = document.createElement("a");
    a.href = url;
    a.download = f.name || "file";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 6e4);
    d.state = "saved";
    status.textContent = shown;
    log(`downloaded ${f.name} (${f.data.size} bytes, SHA-256 ${f.sha256.slice(0, 12)}…)`);
  } catch (e) {
    d.state = "failed";
    d.error = e.message;
    status.textContent = "✗";
    log(`download failed: ${d.error}`);
  } finally {
    bar.remove();
  }
}
async function attach(files) {
  const client = demo.client;
  const to = Number($("peer").value);
  if (!client || !files || !(to > 0)) return;
  for (const file of Array.from(files)) {
    const u = { name: file.name, size: file.size, sent: 0, state: "hashing" };
    demo.uploads.push(u);
    const li = bubble("out", `me → ${to}`, `${file.name} (${humanSize(file.size)}) `, "…");
    const bar = progressBar(li);
    try {
      const sent = await client.sendFile(to, file, {
        onProgress: (n, total) => {
          u.state = "sending";
          u.sent = n;
          bar.value = total ? n / total : 1;
        }
      });
      Object.assign(u, { state: "sent", fileId: sent.fileId, msgId: sent.msgId });
      demo.acked.push(sent.msgId);
      li.dataset.msgId = sent.msgId;
      li.classList.add("acked");
      li.querySelector(".status").textContent = "✓";
      fileButton(li, sent);
    } catch (e) {
      u.state = "failed";
      u.error = e.message;
      li.querySelector(".status").textContent = "✗";
      bar.remove();
      log(`file send failed: ${u.error}`);
    }
  }
}
function showTransport() {
  const t = demo.client?.transport ?? null;
  demo.transport = t;
  const el = $("transport");
  el.textContent = t ?? "—";
  el.dataset.transport = t ?? "";
}
async function login(userId) {
  demo.client?.close();
  const client = new ImaccessClient({
    config: "/dev-config.json",
    token: async () => {
      const r = await fetch(`/dev-token?user_id=${userId}`, { cache: "no-store" });
      if (!r.ok) throw new Error(`dev-token: HTTP ${r.status}`);
      return (await r.json()).token;
    },
    transport: forced === "websocket" || forced === "webtransport" ? forced : "auto",
    log
  });
  demo.client = client;
  client.on("state", (s) => {
    demo.state = s;
    $("state").textContent = s;
    showTransport();
  });
  client.on("connected", ({ transport, auth }) => {
    log(`connected: ${transport}, node ${auth.nodeId}, cursor ${client.lastSeq}`);
    showTransport();
  });
  client.on("stopped", (e) => {
    demo.stopped = e.message;
    log(`stopped: ${e.message}`);
  });
  client.on("message", (m) => {
    demo.received.push(m);
    const mine = m.fromUser === client.userId;
    const li = bubble(mine ? "out" : "in", mine ? `me → ${m.toUser}` : `from ${m.fromUser}`, m.content, mine ? "✓" : `#${m.seq}`);
    const info = fileInfo(m);
    if (info) fileButton(li, info);
  });
  client.on("broadcast", (m) => bubble("in", "broadcast", m.content));
  $("me").textContent = String(userId);
  $("chat").hidden = false;
  try {
    await client.connect();
  } catch (e) {
    log(`connect failed: ${e.message}`);
  }
}
async function send() {
  const client = demo.client;
  const to = Number($("peer").value);
  const input = $("text");
  const text = input.value;
  if (!client || !text || !(to > 0)) return;
  input.value = "";
  const li = bubble("out", `me → ${to}`, text, "…");
  try {
    const ack = await client.send(to, text);
    demo.acked.push(ack.msgId);
    li.querySelector(".status").textContent = "✓";
    li.classList.add("acked");
    li.dataset.msgId = ack.msgId;
  } catch (e) {
    li.querySelector(".status").textContent = "✗";
    log(`send failed: ${e.message}`);
  }
}
$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = Number($("user").value);
  if (id > 0) void login(id);
});
$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void send();
});
$("attach").addEventListener("change", () => {
  const input = $("attach");
  const files = input.files;
  void attach(files).finally(() => {
    input.value = "";
  });
});
$("forced").textContent = forced ? `forced: ${forced}` : "auto (WebTransport, else WebSocket)";
var autoUser = Number(params.get("user"));
if (params.get("peer")) $("peer").value = params.get("peer");
if (autoUser > 0) {
  $("user").value = String(autoUser);
  void login(autoUser);
}
