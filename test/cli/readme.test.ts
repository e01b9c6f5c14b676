import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/version.js';
import { differences, markdown, rowsFromReadme, rowsFromTable } from './options-table.js';

test("README's options table states every option of src/cli-options.ts, with its commands, help text and default, and no other", async () => {
  const readme = rowsFromReadme(await readFile(join(PACKAGE_ROOT, 'README.md'), 'utf8'));
  const table = rowsFromTable();
  assert.ok(table.length > 20 && table.some((t) => t.option === '`--concurrency <n>`'), `the options table has ${table.length} entries`);
  assert.deepEqual(differences(readme, table), [], `regenerate it (node --import tsx test/cli/options-table.ts) and paste it into README.md:\n${markdown(table)}`);
});

test('the README check finds a drifted description or default, a missing row and an extra row', () => {
  const table = rowsFromTable();
  const text = markdown(table);
  assert.deepEqual(differences(rowsFromReadme(text), table), []);
  const drifted = text.replace('| versions manifest |', '| the versions manifest |').replace('| `rendered` |', '| `out` |');
  assert.deepEqual(differences(rowsFromReadme(drifted), table), [
    "README.md's row for `-m, --manifest <file>` [build, plan, render, images] says 'the versions manifest' (default 'the bundled manifests/versions.yaml'), src/cli-options.ts 'versions manifest' (default 'the bundled manifests/versions.yaml')",
    "README.md's row for `-o, --out <dir>` [render] says 'output directory' (default '`out`'), src/cli-options.ts 'output directory' (default '`rendered`')",
  ]);
  const missing = text.split('\n').filter((l) => !l.startsWith('| `--sbom`')).join('\n');
  assert.deepEqual(differences(rowsFromReadme(missing), table), ['README.md has no row for `--sbom` [build]']);
  const extra = text.replace('<!-- /options -->', '| `--bogus` | build | nothing | off |\n<!-- /options -->');
  assert.deepEqual(differences(rowsFromReadme(extra), table), ['README.md lists `--bogus` [build], which src/cli-options.ts does not have']);
  // a cell with an escaped pipe is read with the pipe
  const piped = text.replace('| one side only (one of: cloud, edge) |', '| cloud \\| edge |');
  assert.equal(rowsFromReadme(piped).find((r) => r.option === '`--only <side>`')?.meaning, 'cloud | edge');
});
