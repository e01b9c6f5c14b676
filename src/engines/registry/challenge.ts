import type { Credential } from '../../oci/credentials.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"` (several challenges allowed). */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  const re = /([A-Za-z][\w-]*)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?\s*/gy;
  let current: Challenge | undefined;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  // A token without '=' starts a new challenge (a scheme); key=value pairs are its parameters.
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    const [, name, quoted, bare] = m;
    if (!name) break;
    if (quoted === undefined && bare === undefined) {
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
      // A scheme may be followed directly by a parameter without a comma.
    } else if (current) {
      current.params[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare ?? '');
    }
  }
  return out;
}

export function basicHeader(c: Credential): string | undefined {
  if (c.username === undefined) return undefined;
  return `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`, 'utf8').toString('base64')}`;
}
