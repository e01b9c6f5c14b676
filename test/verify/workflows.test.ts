import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';

/**
 * The GitHub workflows, checked by a workflow validator from the npm registry (@action-validator/core:
 * the workflow JSON schema, WASM, no network) and by what the release flow must do: a v* tag and a
 * manual run, a matrix over amd64/arm64/arm that tests and then runs `bundle build --arch <matrix arch>`,
 * the blob cache, and one release job publishing the tarballs with one combined SHA256SUMS.
 */
const require = createRequire(import.meta.url);
const { validateWorkflow } = require('@action-validator/core') as {
  validateWorkflow(src: string): { actionType: string; errors: { code: string; title: string; path?: string; detail?: string }[] };
};

const root = process.env.KP_ROOT ?? process.cwd();
const wfDir = join(root, '.github', 'workflows');

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  'runs-on': string;
  strategy?: { matrix?: Record<string, unknown> };
  permissions?: Record<string, string>;
  steps: Step[];
}

test('every workflow validates against the GitHub workflow schema', async () => {
  const files = (await readdir(wfDir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  assert.ok(files.includes('ci.yml') && files.includes('release.yml'), files.join(','));
  for (const f of files) {
    const r = validateWorkflow(await readFile(join(wfDir, f), 'utf8'));
    assert.equal(r.actionType, 'workflow');
    assert.deepEqual(r.errors, [], `${f}: ${JSON.stringify(r.errors, null, 2)}`);
  }
});

test('the validator does reject a broken workflow (negative control)', () => {
  const r = validateWorkflow('on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz:\n      - run: echo\n');
  assert.ok(r.errors.length > 0);
  const r2 = validateWorkflow('on: pushh\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo\n');
  assert.ok(r2.errors.length > 0, 'unknown event');
  const r3 = validateWorkflow('on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo\n        uses: actions/checkout@v4\n');
  assert.ok(r3.errors.length > 0, 'a step with both run and uses');
});

test('release.yml: tag v* and manual dispatch; matrix tests then runs `bundle build --arch <matrix arch>`; one release with SHA256SUMS', async () => {
  const wf = parse(await readFile(join(wfDir, 'release.yml'), 'utf8')) as { on: Record<string, unknown>; jobs: Record<string, Job> };
  const on = wf.on as { push?: { tags?: string[] }; workflow_dispatch?: { inputs?: Record<string, unknown> } };
  assert.deepEqual(on.push?.tags, ['v*']);
  assert.ok(on.workflow_dispatch?.inputs?.tag, 'manual runs name the tag');

  const jobs = Object.entries(wf.jobs);
  const [buildName, buildJob] = jobs.find(([, j]) => j.strategy?.matrix?.arch) ?? [];
  assert.ok(buildJob && buildName, 'a matrix job over arch');
  assert.deepEqual(buildJob.strategy?.matrix?.arch, ['amd64', 'arm64', 'arm']);
  const runs = buildJob.steps.map((s) => s.run ?? '');
  const iNpmCi = runs.findIndex((r) => /^npm ci\b/m.test(r));
  const iTests = runs.findIndex((r) => /^sudo .*bash \.ci\/run$/m.test(r));
  const iBuild = runs.findIndex((r) => /(^|\s)npx bundle build --arch \$\{\{ matrix\.arch \}\}(\s|$)/m.test(r));
  assert.ok(iNpmCi >= 0, 'npm ci');
  assert.ok(iTests > iNpmCi, 'the tests (.ci/run, as ci.yml) run after npm ci');
  assert.ok(iBuild > iTests, 'the build step runs `npx bundle build --arch ${{ matrix.arch }}` after the tests');
  const ci = parse(await readFile(join(wfDir, 'ci.yml'), 'utf8')) as { jobs: Record<string, Job> };
  const ciTest = Object.values(ci.jobs).flatMap((j) => j.steps).find((s) => /\.ci\/run/.test(s.run ?? ''));
  assert.ok(runs.includes(ciTest?.run ?? '<none>'), 'the same test command as ci.yml');

  const cache = buildJob.steps.find((s) => s.uses?.startsWith('actions/cache@'));
  assert.ok(cache, 'actions/cache');
  assert.equal(cache.with?.path, '~/.cache/kubeprepare');
  assert.ok(buildJob.steps.indexOf(cache) < iBuild, 'the cache is restored before the build');
  const upload = buildJob.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
  assert.ok(upload && /dist\/SHA256SUMS/.test(String(upload.with?.path)) && /dist\/kubeprepare-\*\.tar/.test(String(upload.with?.path)));

  const [, rel] = jobs.find(([, j]) => j.steps.some((s) => /gh release create|softprops\/action-gh-release/.test(`${s.run ?? ''}${s.uses ?? ''}`))) ?? [];
  assert.ok(rel, 'a release job');
  assert.deepEqual([rel.needs].flat(), [buildName]);
  assert.equal(rel.permissions?.contents, 'write');
  assert.ok(rel.steps.some((s) => s.uses?.startsWith('actions/download-artifact@')));
  const combine = rel.steps.map((s) => s.run ?? '').join('\n');
  assert.match(combine, /cat artifacts\/bundles-\*\/SHA256SUMS \| sort/);
  assert.match(combine, /sha256sum -c SHA256SUMS/);
  assert.match(combine, /gh release create "\$TAG" release\/\*/);
});

test('the run: scripts of every workflow pass shellcheck (expressions replaced by a word)', async () => {
  execFileSync('sh', ['-c', 'command -v shellcheck'], { stdio: 'pipe' }); // missing shellcheck is a failure
  const dir = await mkdtemp(join(tmpdir(), 'kp-wf-'));
  for (const f of (await readdir(wfDir)).filter((n) => /\.ya?ml$/.test(n))) {
    const wf = parse(await readFile(join(wfDir, f), 'utf8')) as { jobs: Record<string, Job> };
    let n = 0;
    for (const [jobName, job] of Object.entries(wf.jobs)) {
      for (const s of job.steps) {
        if (!s.run) continue;
        const script = join(dir, `${f}-${jobName}-${n++}.sh`);
        const env = Object.keys(s.env ?? {}).map((k) => `${k}=\${${k}:-x}; export ${k}`);
        await writeFile(script, `#!/usr/bin/env bash\nset -e\n${env.join('\n')}\n${s.run.replace(/\$\{\{[^}]*\}\}/g, 'EXPR')}\n`);
        try {
          execFileSync('shellcheck', ['-S', 'warning', script], { stdio: 'pipe' });
        } catch (e) {
          assert.fail(`${f} job ${jobName} step '${s.name ?? s.run.split('\n')[0]}':\n${(e as { stdout?: Buffer }).stdout?.toString()}`);
        }
      }
    }
  }
});
