// node wt_check.mjs http://127.0.0.1:PORT/  -> prints RESULT {...} from the page, plus console lines
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const url = process.argv[2];
const netlog = process.argv[3];  // optional net-log file
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wt-chromium-'));
const args = ['--headless=new', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
if (netlog) args.push(`--log-net-log=${netlog}`, '--net-log-capture-mode=Everything');
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium', headless: false /* we pass --headless=new ourselves */, args,
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', m => console.log(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', e => console.log(`[pageerror] ${e}`));
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 20000 });
  const r = await page.evaluate(() => window.__result);
  console.log('FINAL ' + JSON.stringify(r));
  console.log('BROWSER ' + ctx.browser()?.version?.());
} catch (e) {
  console.log('FINAL ' + JSON.stringify({ ok: false, error: 'driver: ' + e.message }));
} finally {
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
