import { Guacr } from './harness.mjs';
import { execSync } from 'node:child_process';
const g = await Guacr.start();
try {
  const html = await (await fetch(`${g.base}/`)).text();
  const assets = [...html.matchAll(/\/assets\/[^"]+/g)].map((m) => m[0]);
  let total = 0;
  for (const a of ['/', ...assets]) {
    const out = execSync(`curl -s -o /dev/null -H 'Accept-Encoding: gzip, br' -w '%{size_download} %{content_type}' ${g.base}${a} -D - | grep -i -E 'content-encoding|^[0-9]' | tr '\\r\\n' '  '`).toString();
    console.log(a, out);
  }
} finally { await g.stop(); }
