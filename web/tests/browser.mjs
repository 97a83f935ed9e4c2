// Headless Chromium driven over stdin/stdout, for tests/test_browser.py.
//
//   node tests/browser.mjs            reads one JSON command per line on stdin, answers one
//                                     JSON line {id, ok, result|error} per command on stdout
//
// Commands: {id, op: 'open', page, url} | {id, op: 'eval', page, expr} (a JS expression, may be
// a promise) | {id, op: 'wait', page, expr, ms} | {id, op: 'goto', page, url} |
// {id, op: 'screenshot', page, path} | {id, op: 'console', page} | {id, op: 'quit'}.
// Chromium: Debian's /usr/bin/chromium (or $CHROMIUM), flags from the WebTransport notes,
// a fresh --user-data-dir. Never `npx playwright install`.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(executablePath)) {
  console.log(JSON.stringify({ id: 0, ok: false, error: `chromium not found at ${executablePath}` }));
  process.exit(2);
}
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imaccess-chromium-'));
const args = ['--headless=new', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath, headless: false /* --headless=new is passed ourselves */, args,
  viewport: { width: 900, height: 640 },
});
const pages = new Map();
const consoles = new Map();

function page(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page ${name}`);
  return p;
}

async function run(cmd) {
  switch (cmd.op) {
    case 'open': {
      const p = pages.size === 0 && ctx.pages().length ? ctx.pages()[0] : await ctx.newPage();
      const lines = [];
      consoles.set(cmd.page, lines);
      p.on('console', m => lines.push(`[${m.type()}] ${m.text()}`));
      p.on('pageerror', e => lines.push(`[pageerror] ${e}`));
      pages.set(cmd.page, p);
      await p.goto(cmd.url);
      return p.url();
    }
    case 'goto': await page(cmd.page).goto(cmd.url); return page(cmd.page).url();
    case 'eval': return await page(cmd.page).evaluate(cmd.expr);
    case 'wait': {
      const h = await page(cmd.page).waitForFunction(cmd.expr, null, { timeout: cmd.ms ?? 15000, polling: 50 });
      return await h.jsonValue();
    }
    case 'screenshot':
      fs.mkdirSync(path.dirname(cmd.path), { recursive: true });
      await page(cmd.page).screenshot({ path: cmd.path });
      return cmd.path;
    case 'console': return consoles.get(cmd.page) ?? [];
    case 'version': return ctx.browser()?.version() ?? null;
    case 'quit': return null;
    default: throw new Error(`unknown op ${cmd.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
try {
  for await (const line of rl) {
    if (!line.trim()) continue;
    let cmd;
    try { cmd = JSON.parse(line); } catch { continue; }
    let reply;
    try {
      reply = { id: cmd.id, ok: true, result: (await run(cmd)) ?? null };
    } catch (e) {
      reply = { id: cmd.id, ok: false, error: String(e?.message ?? e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
    if (cmd.op === 'quit') break;
  }
} finally {
  rl.close();
  await ctx.close().catch(() => undefined);
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(0);
}
