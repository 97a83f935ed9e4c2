// npm run build: bundle the SDK and the demo page logic into ../src/imaccess/web/
// (committed, so `imaccess dev` serves them without npm). Output is deterministic.
import * as esbuild from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.resolve(root, '..', 'src', 'imaccess', 'web');
const common = {
  bundle: true, format: 'esm', target: 'es2022', platform: 'browser', legalComments: 'none',
  logLevel: 'info', charset: 'utf8',
};
await esbuild.build({ ...common, entryPoints: [path.join(root, 'src', 'index.ts')], outfile: path.join(outdir, 'imaccess.js') });
// the demo loads the SDK bundle beside it instead of carrying a second copy of it
const sdkBeside = {
  name: 'sdk-beside',
  setup(build) {
    build.onResolve({ filter: /^\.\/index\.js$/ }, () => ({ path: './imaccess.js', external: true }));
  },
};
await esbuild.build({
  ...common, entryPoints: [path.join(root, 'src', 'demo.ts')], outfile: path.join(outdir, 'demo.js'),
  plugins: [sdkBeside],
});
