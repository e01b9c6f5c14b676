import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli.js';
import { COMMANDS, OPTIONS, type OptionSpec } from '../../src/cli-options.js';
import { captureIo } from '../harness/io.js';

const help = async (args: string[]) => {
  const io = captureIo();
  assert.equal(await runCli([...args, '--help'], io), 0);
  return io.outText().replace(/\s+/g, ' ');
};

test('every command offers exactly the options the table gives it, with the table\'s help text; -v/-q on the program', async () => {
  const programHelp = await help([]);
  for (const name of COMMANDS) {
    const text = await help([name]);
    for (const o of OPTIONS as readonly OptionSpec[]) {
      if (o.global) continue;
      const shown = text.includes(`${o.flags} ${o.description.replace(/\s+/g, ' ')}`);
      if (o.commands.includes(name)) assert.ok(shown, `${name} --help shows ${o.flags}: ${o.description}`);
      else if (!(OPTIONS as readonly OptionSpec[]).some((x) => x.flags === o.flags && x.commands.includes(name))) assert.ok(!text.includes(` ${o.flags} `), `${name} --help does not show ${o.flags}`);
    }
  }
  for (const o of (OPTIONS as readonly OptionSpec[]).filter((x) => x.global)) assert.ok(programHelp.includes(`${o.flags} ${o.description}`), `--help shows ${o.flags}`);
});

test('table values reach the command under its own names: plan --out/--compression/--only/--binary-mirror', async () => {
  const io = captureIo();
  const args = ['plan', '--arch', 'arm64', '--only', 'edge', '--out', '/tmp/kp-plan-out', '--compression', 'gzip', '--json', '--binary-mirror', 'https://github.com/=http://127.0.0.1:9/gh/'];
  assert.equal(await runCli(args, io), 0, io.errText());
  const p = JSON.parse(io.outText()) as { bundles: { side: string; output: string; binaries: { url: string }[] }[] };
  assert.deepEqual(p.bundles.map((b) => b.side), ['edge']);
  assert.equal(p.bundles[0]!.output, '/tmp/kp-plan-out/kubeprepare-edge-v1.22.2-linux-arm64.tar.gz');
  assert.ok(p.bundles[0]!.binaries.some((b) => b.url.startsWith('http://127.0.0.1:9/gh/')), 'the mirror applies');
  assert.ok(!p.bundles[0]!.binaries.some((b) => b.url.startsWith('https://github.com/')));
});

test('--concurrency, --json and -v are accepted by build and images; --concurrency must be 1 to 64', async () => {
  const io = captureIo();
  assert.equal(await runCli(['build', '--arch', 'arm64', '--dry-run', '--concurrency', '8', '--json', '-v'], io), 0, io.errText());
  // with --json, stdout holds only JSON events (README "Progress"); the dry run ends with its result event
  const events = io.outText().trim().split('\n').map((l) => JSON.parse(l) as { event: string; dryRun?: boolean });
  assert.deepEqual(events.at(-1)?.event, 'result');
  assert.equal(events.at(-1)?.dryRun, true);
  for (const bad of ['0', '65', '2.5', 'many']) {
    const e = captureIo();
    assert.equal(await runCli(['images', '--arch', 'arm64', '--out', '/tmp/kp-never.tar', '--concurrency', bad], e), 2, bad);
    assert.match(e.errText(), new RegExp(`--concurrency '${bad.replace('.', '\\.')}' is not a whole number from 1 to 64`));
  }
  const e = captureIo();
  assert.equal(await runCli(['plan', '--arch', 'arm64', '--concurrency', '4'], e), 2, 'plan takes no --concurrency');
  assert.match(e.errText(), /unknown option '--concurrency'/);
});
