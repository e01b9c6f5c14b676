import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** `--cache-dir`, else `$XDG_CACHE_HOME/kubeprepare`, else `~/.cache/kubeprepare`. */
export function resolveCacheDir(flag?: string): string {
  if (flag) return resolve(flag);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'kubeprepare');
}
