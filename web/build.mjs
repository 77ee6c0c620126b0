// Builds the web client into web/dist: index.html, assets/app.js, assets/app.css.
// Prints the gzipped size of what the first page load fetches (budget: 300 KB).
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const BUDGET = 300 * 1024;

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(path.join(dist, 'assets'), { recursive: true });

const files = [];
await build({
  entryPoints: { app: path.join(here, 'src/main.ts') },
  outdir: path.join(dist, 'assets'),
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  // Content hashes: the server caches /assets/* as immutable.
  entryNames: '[name]-[hash]',
  metafile: true,
}).then((result) => {
  const outs = Object.keys(result.metafile.outputs).map((o) => path.relative(dist, path.resolve(o)));
  const js = outs.find((o) => o.endsWith('.js'));
  const css = outs.find((o) => o.endsWith('.css'));
  if (!js || !css) throw new Error(`unexpected esbuild outputs: ${outs.join(', ')}`);
  let html = fs.readFileSync(path.join(here, 'index.html'), 'utf8');
  html = html.replace('/assets/app.js', `/${js}`).replace('/assets/app.css', `/${css}`);
  if (!html.includes(js) || !html.includes(css)) throw new Error('index.html does not reference the assets');
  fs.writeFileSync(path.join(dist, 'index.html'), html);
  files.push('index.html', js, css);
});
let raw = 0;
let gz = 0;
for (const f of files) {
  const buf = fs.readFileSync(path.join(dist, f));
  const z = zlib.gzipSync(buf, { level: 9 }).length;
  raw += buf.length;
  gz += z;
  // Precompressed copies (the server sends them when the browser accepts them).
  fs.writeFileSync(path.join(dist, `${f}.gz`), zlib.gzipSync(buf, { level: 9 }));
  fs.writeFileSync(path.join(dist, `${f}.br`), zlib.brotliCompressSync(buf, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }));
  console.log(`web-build: ${f.padEnd(28)} ${String(buf.length).padStart(8)} B  ${String(z).padStart(7)} B gzipped`);
}
console.log(`web-build: first page load ${raw} B raw, ${gz} B gzipped (${(gz / 1024).toFixed(1)} KB of ${BUDGET / 1024} KB budget)`);
if (gz > BUDGET) {
  console.error(`web-build: ERROR: first page load ${gz} B gzipped exceeds the ${BUDGET} B budget`);
  process.exit(1);
}
