import { UserError } from './errors.js';
import { parseArch, parseArchList } from './platform.js';
import { ENGINES } from './engines/index.js';
import { DEFAULT_MANIFEST } from './version.js';
import type { Compression } from './plan/plan.js';
import type { Side } from './manifest/schema.js';

/**
 * Every command-line option, once: its flags, help text, default, parser or choices, and the commands that
 * take it (modelled on npm-check-updates' cli-options.ts). src/cli.ts builds commander from this table, the
 * options each command function receives are typed from it (`CliOptions<'build'>`), and test/cli/readme.test.ts
 * checks the README's options table against it. `key` is the name the command function takes the value under.
 *
 * This module is on the path of `--version` and `--help`: import values only from light modules (platform,
 * engines/index, version: no zod, yaml, handlebars, listr2 or dockerode); types from anywhere.
 */
export const COMMANDS = ['build', 'plan', 'render', 'images', 'verify', 'inspect'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface OptionSpec {
  /** commander flags, e.g. `-o, --out <dir>` */
  flags: string;
  key: string;
  description: string;
  /** commands whose function receives the value (a `global` option is also accepted on the program) */
  commands: readonly CommandName[];
  global?: true;
  required?: true;
  default?: unknown;
  /** the default as the README states it, where the value is computed or lives in the help text */
  docDefault?: string;
  choices?: readonly string[];
  parse?: (value: string, previous: never) => unknown;
}

/** A choices list that names exactly the values of type T, checked at compile time (no more, no fewer). */
const allOf =
  <T extends string>() =>
  <const L extends readonly T[]>(list: L & ([T] extends [L[number]] ? unknown : never)): L =>
    list;
const SIDE_CHOICES = allOf<Side>()(['cloud', 'edge']);
// The list lives in plan/plan.ts (COMPRESSIONS) too; importing it would load zod on every `--help`.
const COMPRESSION_CHOICES = allOf<Compression>()(['none', 'gzip', 'zstd']);
const DEFAULT_COMPRESSION: Compression = 'none';

/** Parses `--binary-mirror FROM=TO` (repeatable: appends to the values before it). */
export function parseMirrorFlag(value: string, previous: { from: string; to: string }[] = []): { from: string; to: string }[] {
  const i = value.indexOf('=');
  const from = value.slice(0, i);
  const to = value.slice(i + 1);
  if (i <= 0 || !/^https?:\/\//.test(from) || !/^https?:\/\//.test(to)) {
    throw new UserError(`--binary-mirror '${value}' is not FROM=TO`, { code: 'usage', hint: 'e.g. --binary-mirror https://github.com/=http://127.0.0.1:8080/github/' });
  }
  return [...previous, { from, to }];
}

function parseConcurrency(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UserError(`--concurrency '${v}' is not a whole number from 1 to 64`, { code: 'usage' });
  return n;
}

const MANY = ['build', 'plan', 'render'] as const;
const FETCHING = ['build', 'images'] as const;

export const OPTIONS = [
  { flags: '-v, --verbose', key: 'verbose', global: true, commands: FETCHING, description: 'debug output on stderr (requests, retries, mirror fallbacks, token fetches, cache hits, docker re-tags; also KUBEPREPARE_DEBUG=1) and stack traces on errors' },
  { flags: '-q, --quiet', key: 'quiet', global: true, commands: [], description: 'no progress output' },
  { flags: '-a, --arch <list>', key: 'platforms', commands: MANY, required: true, parse: parseArchList, description: 'architectures, comma-separated: amd64, arm64, arm (= arm/v7)' },
  { flags: '-a, --arch <arch>', key: 'platform', commands: ['images'], required: true, parse: parseArch, description: 'one architecture: amd64, arm64, arm (= arm/v7), arm/v6' },
  { flags: '-a, --arch <arch>', key: 'platform', commands: ['verify'], parse: parseArch, docDefault: "bundle.json's platform", description: 'check the images against this architecture instead of the one bundle.json names' },
  { flags: '-o, --out <file>', key: 'outFile', commands: ['images'], required: true, description: 'archive to write, e.g. images-arm64.tar' },
  { flags: '-m, --manifest <file>', key: 'manifest', commands: [...MANY, 'images'], default: DEFAULT_MANIFEST, docDefault: 'the bundled manifests/versions.yaml', description: 'versions manifest' },
  { flags: '--only <side>', key: 'only', commands: [...MANY, 'images'], choices: SIDE_CHOICES, docDefault: 'both', description: 'one side only' },
  { flags: '--binary-mirror <from=to>', key: 'binaryMirrors', commands: MANY, parse: parseMirrorFlag, default: [], description: 'rewrite binary URLs starting with FROM to start with TO (repeatable)' },
  { flags: '-o, --out <dir>', key: 'outDir', commands: ['build', 'plan'], default: 'dist', description: 'output directory' },
  { flags: '-o, --out <dir>', key: 'outDir', commands: ['render'], default: 'rendered', description: 'output directory' },
  { flags: '--cache-dir <dir>', key: 'cacheDir', commands: FETCHING, docDefault: '$XDG_CACHE_HOME/kubeprepare', description: 'blob and download cache (default $XDG_CACHE_HOME/kubeprepare or ~/.cache/kubeprepare)' },
  { flags: '--engine <engine>', key: 'engine', commands: FETCHING, choices: ENGINES, default: 'registry', description: "how images are fetched (in build, an image's own engine: in the manifest wins)" },
  { flags: '--compression <kind>', key: 'compression', commands: ['build', 'plan'], choices: COMPRESSION_CHOICES, default: DEFAULT_COMPRESSION, description: 'tarball compression (none: plain tar, see README)' },
  { flags: '--registries <file>', key: 'registriesFile', commands: FETCHING, docDefault: "the manifest's registries", description: 'registries.yaml with mirrors and credentials (K3s/containerd format)' },
  { flags: '--docker-config <file>', key: 'dockerConfigPath', commands: FETCHING, docDefault: '~/.docker/config.json', description: 'Docker config.json with registry credentials (default ~/.docker/config.json)' },
  { flags: '--keep-images', key: 'keepImages', commands: ['build'], description: 'docker engine: keep the pulled images in the daemon (under kubeprepare.local/keep/) for fast rebuilds' },
  { flags: '--templates <dir>', key: 'templatesDir', commands: ['build', 'render'], docDefault: 'the bundled scripts-templates/', description: 'template directory (default: the bundled scripts-templates/)' },
  { flags: '-n, --dry-run', key: 'dryRun', commands: ['build'], description: 'show the plan and stop: nothing is downloaded or written' },
  { flags: '--sbom', key: 'sbom', commands: ['build'], description: 'also write a CycloneDX 1.5 SBOM (sbom.cdx.json) inside each bundle' },
  { flags: '--concurrency <n>', key: 'concurrency', commands: FETCHING, parse: parseConcurrency, default: 4, description: 'parallel blob downloads of the whole build (and as many manifest requests per bundle), 1 to 64 (the default chosen by npm run bench -- --netem)' },
  { flags: '--json', key: 'json', commands: FETCHING, description: 'progress and result as JSON events, one per line on stdout (README "Progress")' },
  { flags: '--json', key: 'json', commands: ['plan'], description: 'machine-readable: one object per bundle (side, arch, images[].ref, binaries[].url)' },
  { flags: '--json', key: 'json', commands: ['verify'], description: 'machine-readable result: ok, problems[] (kind, subject, message), counts' },
  { flags: '--json', key: 'json', commands: ['inspect'], description: 'machine-readable: components, images[] (ref, digest, platform, size), binaries[], dedup' },
] as const satisfies readonly OptionSpec[];

type Spec = (typeof OPTIONS)[number];
type ValueOf<S extends Spec> = S extends { parse: (...a: never[]) => infer R }
  ? R
  : S extends { choices: readonly (infer C)[] }
    ? C
    : S extends { flags: `${string}<${string}>` }
      ? string
      : boolean;
type Takes<S extends Spec, C extends CommandName> = C extends S['commands'][number] ? S : never;
type Always<S extends Spec> = S extends { default: unknown } | { required: true } ? S : never;

/** The options command C receives from the command line: always set where the table has a default or requires it. */
export type CliOptions<C extends CommandName> = {
  [S in Spec as Always<Takes<S, C>>['key']]: ValueOf<S>;
} & {
  [S in Spec as Exclude<Takes<S, C>, Always<Spec>>['key']]?: ValueOf<S>;
};

/** The program-level options (`-v`, `-q`), as commander returns them. */
export type GlobalOptions = { [S in Extract<Spec, { global: true }> as S['key']]?: ValueOf<S> };

export function optionsOf(command: CommandName | 'global'): readonly Spec[] {
  return OPTIONS.filter((o) => (command === 'global' ? 'global' in o : !('global' in o) && (o.commands as readonly string[]).includes(command)));
}
