// Unit tests of the WebRTC tunnel's pure parts (web/src/webrtc.ts): the instruction encoder
// and the incremental parser (code-point lengths, split messages, malformed input). The
// module is bundled with web/'s esbuild and imported here; no browser needed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from './harness.mjs';

let mod;
before(async () => {
  const require = createRequire(path.join(ROOT, 'web/package.json'));
  let esbuild;
  try { esbuild = require('esbuild'); } catch { throw new Error('web/node_modules/esbuild missing (scripts/web-build.sh installs it)'); }
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'guacr-webrtc-unit-')), 'webrtc.mjs');
  await esbuild.build({ entryPoints: [path.join(ROOT, 'web/src/webrtc.ts')], bundle: true, format: 'esm', platform: 'neutral', outfile: out, logLevel: 'error' });
  // guacamole-common-js reads a few browser globals when it loads.
  globalThis.window ??= globalThis;
  mod = await import(pathToFileURL(out).href);
});

function parseAll(chunks) {
  const p = new mod.InstructionParser();
  const got = [];
  p.oninstruction = (op, args) => got.push([op, ...args]);
  for (const c of chunks) p.receive(c);
  return got;
}

describe('WebRTC tunnel: instruction text', () => {
  it('encodes with code-point lengths', () => {
    assert.equal(mod.encodeInstruction(['', 'ping', 1234]), '0.,4.ping,4.1234;');
    assert.equal(mod.encodeInstruction(['key', 65307, 1]), '3.key,5.65307,1.1;');
    // An astral character is one code point (two UTF-16 units).
    assert.equal(mod.encodeInstruction(['clipboard', 'a😀b']), '9.clipboard,3.a😀b;');
    assert.equal(mod.encodeInstruction(['x', 'é']), '1.x,1.é;');
  });

  it('parses several instructions per message, the internal uuid first', () => {
    const uuid = '0b4b9a4e-3f7e-4b7a-9a55-3a3c2f1e0d9c';
    assert.deepEqual(parseAll([`0.,36.${uuid};4.size,1.0,4.1024,3.768;4.sync,3.123;`]),
      [['', uuid], ['size', '0', '1024', '768'], ['sync', '123']]);
  });

  it('keeps an instruction split across messages (even inside a surrogate pair)', () => {
    const text = '4.name,6.h😀llo!;5.error,6.bad 😀!,3.769;';
    for (let cut = 1; cut < text.length; cut++) {
      assert.deepEqual(parseAll([text.slice(0, cut), text.slice(cut)]),
        [['name', 'h😀llo!'], ['error', 'bad 😀!', '769']], `cut at ${cut}`);
    }
  });

  it('round-trips what it encodes', () => {
    const rows = [['mouse', 10, 20, 1], ['clipboard', '', 'ünïcødé 😀😀 ;,.'], ['', 'ping', Date.now()]];
    assert.deepEqual(parseAll([rows.map((r) => mod.encodeInstruction(r)).join('')]), rows.map((r) => r.map(String)));
  });

  it('refuses malformed input with an error, never a wrong instruction', () => {
    assert.throws(() => parseAll(['x.abc;']), /bad element length/);
    assert.throws(() => parseAll(['3.abc:']), /bad element terminator/);
    assert.throws(() => parseAll(['-1.a;']), /bad element length/);
    assert.throws(() => parseAll(['9999999999.a;']), /bad element length/);
    assert.deepEqual(parseAll(['3.ab']), [], 'incomplete: nothing yet');
  });
});
