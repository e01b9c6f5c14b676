// Readers for test/fixtures/upstream/: the CloudCore chart objects as `keadm manifest` v1.22.0 rendered
// them (README.md there holds each file's exact command line), and K3s' packaged workloads.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './helpers.js';

export const UPSTREAM_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'upstream');

export interface K8sObject { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; spec?: object }

export function readObjects(file: string): K8sObject[] {
  const text = readFileSync(join(UPSTREAM_FIXTURES, file), 'utf8');
  const docs = parseAllDocuments(text);
  const out: K8sObject[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    const o = d.toJS() as K8sObject | null;
    if (o && typeof o === 'object' && o.kind) out.push(o);
  }
  return out;
}

export function findObject(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objs.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o;
}

/** The argv (after `keadm manifest`) the README records for a fixture file, split as bash splits it. */
export function manifestCommand(file: string): string[] {
  const lines = readFileSync(join(UPSTREAM_FIXTURES, 'README.md'), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.trim() === `# file: ${file}`);
  if (at < 0) throw new Error(`README.md records no command for ${file}`);
  const cmd = lines[at + 1]?.trim() ?? '';
  if (!cmd.startsWith('keadm manifest ')) throw new Error(`README.md: the line after '# file: ${file}' is not a keadm manifest command`);
  const r = spawnSync('bash', ['-c', `printf '%s\\n' ${cmd.slice('keadm manifest '.length)}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.replace(/\n$/, '').split('\n');
}
