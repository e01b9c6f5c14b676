import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * `--version` and `--help` without loading commander or any command (issue 15: both within 0.15 s,
 * where node alone takes ~0.13 s on the 2-core VM and loading commander ~0.02 s more). The help texts
 * are commander's own, written to dist/help.json by `npm run build` (src/help-cache.ts) from the same
 * program; the help width is fixed at 80 columns (cli.ts), so the text does not depend on the terminal.
 * Anything else, or a checkout without that file (tsx from src/), or a help.json from another version,
 * returns undefined and the caller runs the CLI (src/cli.ts), which prints the same text itself.
 * CommonJS (dist/fast-path.cjs), so that bin/kubeprepare.cjs answers without node's ES module loader.
 */
export interface HelpCache {
  version: string;
  /** commander's help output: '' for the program, else the command's name */
  help: Record<string, string>;
}

export const HELP_CACHE_URL = pathToFileURL(join(__dirname, 'help.json'));
const PACKAGE_JSON_URL = pathToFileURL(join(__dirname, '..', 'package.json'));

const HELP_FLAGS = new Set(['--help', '-h']);
const VERSION_FLAGS = new Set(['--version', '-V']);

/** The key of help.json the arguments ask for: '' (program), a command, or undefined (not a help request). */
export function helpKey(argv: readonly string[]): string | undefined {
  const [a, b, ...rest] = argv;
  if (rest.length > 0 || a === undefined) return undefined;
  if (b === undefined) return HELP_FLAGS.has(a) || a === 'help' ? '' : undefined;
  if (a === 'help' && !b.startsWith('-')) return b;
  if (HELP_FLAGS.has(b) && !a.startsWith('-')) return a;
  return undefined;
}

/** What `kubeprepare <argv>` prints on stdout when it is a plain --version/--help, else undefined. */
export function fastOutput(argv: readonly string[], files: { packageJson: URL; helpCache: URL } = { packageJson: PACKAGE_JSON_URL, helpCache: HELP_CACHE_URL }): string | undefined {
  const key = helpKey(argv);
  const versionAsked = argv.length === 1 && VERSION_FLAGS.has(argv[0]!);
  if (key === undefined && !versionAsked) return undefined; // any other command: no file read here
  try {
    const version = (JSON.parse(readFileSync(files.packageJson, 'utf8')) as { version: string }).version;
    if (key === undefined) return `${version}\n`;
    const cache = JSON.parse(readFileSync(files.helpCache, 'utf8')) as HelpCache;
    if (cache.version !== version || !Object.hasOwn(cache.help, key)) return undefined;
    return cache.help[key];
  } catch {
    return undefined; // no help.json (a source checkout) or unreadable: the CLI answers
  }
}
