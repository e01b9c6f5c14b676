// The keadm command lines the installers really run, read from scripts rendered through the product's own
// code (loadManifest + makePlan + buildRenderContext from manifests/versions.yaml, then renderSide), not
// from the test fixture context: what ships is what is checked. The call is evaluated by bash with the
// script's own readonly values, so quoting and variables resolve as they do on a site.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadManifest } from '../../src/manifest/load.js';
import { makePlan, type BundlePlan } from '../../src/plan/plan.js';
import { buildRenderContext } from '../../src/render/build-context.js';
import { renderSide } from '../../src/render/render.js';
import { defaultPlatform, type Arch } from '../../src/platform.js';
import { REPO_ROOT, TEMPLATES_ROOT } from './helpers.js';

export interface RenderedSide { bundle: BundlePlan; installSh: string; images: string[]; files: Map<string, string> }

export async function renderReal(side: 'cloud' | 'edge', arch: Arch = 'amd64'): Promise<RenderedSide> {
  const lm = await loadManifest(join(REPO_ROOT, 'manifests', 'versions.yaml'));
  const plan = makePlan(lm, { platforms: [defaultPlatform(arch)], only: side, outDir: join(REPO_ROOT, 'dist-test-unused'), compression: 'none' });
  const bundle = plan.bundles.find((b) => b.side === side);
  if (!bundle) throw new Error(`no ${side} bundle in the plan`);
  const files = await renderSide(TEMPLATES_ROOT, buildRenderContext(plan, bundle));
  const install = files.find((f) => f.path === 'install.sh');
  if (!install) throw new Error(`${side}: install.sh not rendered`);
  return { bundle, installSh: install.content, images: bundle.images.map((i) => i.ref), files: new Map(files.map((f) => [f.path, f.content])) };
}

/**
 * The argv of the script's `run "$KEADM_BIN" <sub> \ ...` call, evaluated by bash after the script's
 * readonly assignments, with `vars` for the runtime variables the call uses (and advertise_list).
 */
export function keadmCall(script: string, sub: 'init' | 'join', vars: Record<string, string>): string[] {
  const lines = script.split('\n');
  const start = lines.findIndex((l) => l.trim() === `run "$KEADM_BIN" ${sub} \\`);
  if (start < 0) throw new Error(`no 'run "$KEADM_BIN" ${sub}' call in the script`);
  let end = start;
  while (lines[end]!.trimEnd().endsWith('\\')) end++;
  const call = lines.slice(start, end + 1).join('\n').replace(`run "$KEADM_BIN" ${sub}`, `printf '%s\\n' ${sub}`);
  const readonlys = lines.filter((l) => /^readonly [A-Z_]+=/.test(l) && !l.includes('$')).join('\n');
  const assigns = Object.entries(vars).map(([k, v]) => `${k}=${shq(v)}`).join('\n');
  const prog = `set -eu\n${readonlys}\n${assigns}\nadvertise_list() { printf '%s' "$ADVERTISE"; }\n${call}\n`;
  const r = spawnSync('bash', ['-c', prog], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`evaluating the keadm ${sub} call failed: ${r.stderr}\n${prog}`);
  return r.stdout.replace(/\n$/, '').split('\n');
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `--flag value` pairs of an argv (after the subcommand), in order; every flag here takes a value. */
export function flagPairs(argv: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 1; i < argv.length; i += 2) {
    const f = argv[i]!;
    if (!f.startsWith('--') || i + 1 >= argv.length) throw new Error(`unexpected argv shape at ${f}: ${argv.join(' ')}`);
    out.push([f, argv[i + 1]!]);
  }
  return out;
}
