import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : n.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative module a file imports or re-exports (static and dynamic), as a path below src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) out.push(relative(SRC, resolve(dirname(file), m[1]!)));
  return out;
}

function offending(folder: string, forbidden: (target: string) => boolean): string[] {
  return tsFiles(join(SRC, folder)).flatMap((f) => importsOf(f).filter(forbidden).map((t) => `${relative(SRC, f)} -> ${t}`));
}

describe('module layering (issue 16: one OCI vocabulary, engines independent)', () => {
  it('finds the imports it checks (the scan is not blind)', () => {
    assert.ok(importsOf(join(SRC, 'engines/docker/engine.ts')).includes('oci/blob-cache.js'));
    assert.ok(importsOf(join(SRC, 'engines/index.ts')).includes('engines/registry/index.js'), 'dynamic imports are seen too');
  });

  it('the docker engine imports nothing of the registry engine, and the registry engine nothing of the docker engine', () => {
    assert.deepEqual(offending('engines/docker', (t) => t.startsWith('engines/registry/')), []);
    assert.deepEqual(offending('engines/registry', (t) => t.startsWith('engines/docker/')), []);
  });

  it('src/oci depends on no stage (engines, archive, bundle, commands)', () => {
    assert.deepEqual(offending('oci', (t) => /^(engines|archive|bundle|commands|render|plan)\//.test(t)), []);
  });
});
