import { UserError } from '../errors.js';

// What the rendered install.sh scripts tell the image-completeness check (`./needs.ts`): their `readonly`
// variables and the values of the flags they give keadm and K3s, expanded.

/** `readonly NAME=value` assignments of a rendered script (scalars only), quotes removed. */
export function scriptVariables(script: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of script.split('\n')) {
    const m = /^\s*readonly\s+(.*)$/.exec(line);
    if (!m?.[1] || m[1].includes('=(')) continue;
    for (const a of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|"[^"]*"|[^\s'"]*)/g)) vars.set(a[1]!, unquote(a[2]!));
  }
  return vars;
}

function unquote(s: string): string {
  if ((s.startsWith("'") && s.endsWith("'")) || (s.startsWith('"') && s.endsWith('"'))) return s.slice(1, -1);
  return s;
}

function expand(value: string, vars: Map<string, string>, where: string): string {
  const out = value.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (all, name: string) => vars.get(name) ?? all);
  if (out.includes('$')) throw new UserError(`${where}: cannot resolve '${value}' to a value (the images it decides cannot be derived)`, { code: 'template', hint: 'give the variable a readonly NAME=value assignment in the script' });
  return out;
}

/** Every `<flag> VALUE` / `<flag>=VALUE` of a script, expanded. */
function flagValues(script: string, flag: string, vars: Map<string, string>, where: string): string[] {
  const re = new RegExp(`(?:^|\\s)${flag.replace(/-/g, '\\-')}[= ]\\s*("[^"]*"|'[^']*'|[^\\s"']+)`, 'g');
  return [...script.matchAll(re)].map((m) => expand(unquote(m[1]!), vars, where));
}

/** What the rendered cloud install.sh gives keadm init and K3s. */
export interface CloudScriptFacts {
  kubeedgeVersion: string;
  imageRepository: string;
  sets: Record<string, string>;
  k3sDisabled: string[];
}

export function cloudScriptFacts(script: string, where = 'install.sh (cloud)'): CloudScriptFacts {
  const vars = scriptVariables(script);
  const sets: Record<string, string> = {};
  for (const s of flagValues(script, '--set', vars, where)) {
    const i = s.indexOf('=');
    if (i > 0) sets[s.slice(0, i)] = s.slice(i + 1);
  }
  const repos = [...new Set(flagValues(script, '--image-repository', vars, where))];
  if (repos.length > 1) throw new UserError(`${where}: keadm is given several --image-repository values (${repos.join(', ')})`, { code: 'template', hint: 'give keadm init one image repository' });
  return {
    kubeedgeVersion: vars.get('KUBEEDGE_VERSION') ?? '',
    imageRepository: repos[0] ?? '',
    sets,
    k3sDisabled: [...new Set(flagValues(script, '--disable', vars, where).flatMap((v) => v.split(',')))],
  };
}

export interface EdgeScriptFacts {
  kubeedgeVersion: string;
  imageRepository: string;
  /** The bundled sandbox image install.sh configures containerd with (or tags for the host's). */
  sandboxImage: string;
}

export function edgeScriptFacts(script: string, where = 'install.sh (edge)'): EdgeScriptFacts {
  const vars = scriptVariables(script);
  const repos = [...new Set(flagValues(script, '--image-repository', vars, where))];
  return { kubeedgeVersion: vars.get('KUBEEDGE_VERSION') ?? '', imageRepository: repos[0] ?? '', sandboxImage: vars.get('SANDBOX_IMAGE') ?? '' };
}
