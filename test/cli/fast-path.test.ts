import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { lineOf, runCli } from '../../src/cli.js';
import { COMMANDS } from '../../src/cli-options.js';
import { fastOutput, helpKey } from '../../src/fast-path.cjs';
import { helpTexts } from '../../src/help-cache.js';
import { PACKAGE_ROOT } from '../../src/version.js';

/**
 * `--version` and `--help` are answered from dist/help.json without loading commander (src/fast-path.ts,
 * issue 15's start-up target): the text must be what the CLI itself prints, for every form of the request.
 * Runs the built CLI (npm run build first, as .ci/run does).
 */
/** The installed commands' entry (package.json bin: CommonJS, no ES module loader for these) and the ES module one. */
const PACKAGE_BIN = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
const BINS = [...new Set([...Object.values(PACKAGE_BIN), 'bin/kubeprepare.js'])].map((b) => join(PACKAGE_ROOT, b));
const FORMS: string[][] = [['--version'], ['-V'], ['--help'], ['-h'], ['help'], ...COMMANDS.flatMap((c) => [[c, '--help'], [c, '-h'], ['help', c]])];

/** What the CLI prints in-process (commander, no fast path), as the entry point writes it. */
async function viaCommander(argv: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (s) => (out += lineOf(s)), err: (s) => (err += lineOf(s)), env: {}, isTTY: false });
  return { out, err, code };
}

function built(bin: string, argv: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [bin, ...argv], { encoding: 'utf8', env: { ...process.env, ...env } });
}

test('the installed commands start from the CommonJS entry, which answers --version/--help itself', () => {
  assert.deepEqual(PACKAGE_BIN, { kubeprepare: 'bin/kubeprepare.cjs', bundle: 'bin/kubeprepare.cjs' });
  assert.equal(BINS.length, 2);
});

test('dist/help.json is what this source prints (npm run build wrote it from the same program)', () => {
  const file = join(PACKAGE_ROOT, 'dist', 'help.json');
  assert.ok(existsSync(file), `${file} is missing: npm run build writes it`);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), helpTexts());
});

/** In a NODE_DEBUG=module log: commander was loaded, or the bundled CLI (commander among it) ran. */
const CLI_LOADED = /commander|parent: \S*\/dist\/bundle-\w+\.js/;

test('every --version/--help form prints what commander prints, without loading commander', async () => {
  for (const argv of FORMS) {
    const want = await viaCommander(argv);
    for (const bin of BINS) {
      // NODE_DEBUG=module logs every CommonJS module node looks up on stderr: commander itself from the
      // compiled CLI, or, from the bundled one (scripts/bundle-cli.mjs), the node modules commander's
      // bundled code requires, with the bundle file as their parent.
      const r = built(bin, argv, { NODE_DEBUG: 'module' });
      assert.equal(r.status, want.code, `${bin} ${argv.join(' ')}: exit code`);
      assert.equal(r.stdout, want.out, `${bin} ${argv.join(' ')}: output`);
      assert.doesNotMatch(r.stderr, CLI_LOADED, `${bin} ${argv.join(' ')} answered without commander`);
    }
  }
});

test('anything else goes to the CLI: a help for no such command, options beside --help, a stale help.json', async () => {
  assert.equal(helpKey(['build', '--arch', 'arm64', '--help']), undefined);
  assert.equal(helpKey(['--verbose', '--help']), undefined);
  assert.equal(helpKey([]), undefined);
  for (const argv of [['nosuch', '--help'], ['help', 'nosuch'], ['--verbose', '--help']]) {
    const want = await viaCommander(argv);
    for (const bin of BINS) {
      const r = built(bin, argv, { NODE_DEBUG: 'module' });
      assert.match(r.stderr, CLI_LOADED, `${bin} ${argv.join(' ')} is commander’s to answer`);
      assert.equal(r.stdout, want.out, `${bin} ${argv.join(' ')}`);
      assert.ok(r.stderr.endsWith(want.err), `${bin} ${argv.join(' ')}`);
      assert.equal(r.status, want.code, `${bin} ${argv.join(' ')}`);
    }
  }
  // A help.json of another version (dist/ not rebuilt after a version bump) is not used.
  const dir = mkdtempSync(join(tmpdir(), 'kp-fast-'));
  try {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ version: '9.9.9' }));
    writeFileSync(join(dir, 'help.json'), JSON.stringify({ version: '9.9.8', help: { '': 'old help\n' } }));
    const files = { packageJson: pathToFileURL(join(dir, 'package.json')), helpCache: pathToFileURL(join(dir, 'help.json')) };
    assert.equal(fastOutput(['--help'], files), undefined);
    assert.equal(fastOutput(['--version'], files), '9.9.9\n');
    writeFileSync(join(dir, 'help.json'), JSON.stringify({ version: '9.9.9', help: { '': 'new help\n' } }));
    assert.equal(fastOutput(['--help'], files), 'new help\n');
    rmSync(join(dir, 'help.json'));
    assert.equal(fastOutput(['--help'], files), undefined, 'no help.json (a source checkout): the CLI answers');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
