import { readFile } from 'node:fs/promises';
import { relative, resolve, dirname, isAbsolute } from 'node:path';
import { UserError } from '../errors.js';
import { parseYamlWithSchema } from '../util/yaml-schema.js';
import { manifestSchema, type Manifest } from './schema.js';

export interface LoadedManifest {
  manifest: Manifest;
  /** Absolute path of the file. */
  path: string;
  /** Path as shown in messages (relative to the cwd when shorter). */
  displayPath: string;
  /** Directory relative paths inside the manifest are resolved against. */
  baseDir: string;
}

export function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

/**
 * Reads and validates a versions manifest. Every problem is reported with `file:line:column`, the key
 * path and what was expected; all problems are listed at once (exit code 2).
 */
export async function loadManifest(file: string): Promise<LoadedManifest> {
  const path = resolve(file);
  const shown = displayPath(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${shown}: cannot read the versions manifest (${code ?? (e as Error).message})`, {
      code: 'manifest',
      hint: 'pass an existing file with --manifest, or run from the repository root where manifests/versions.yaml lives',
    });
  }
  return { manifest: parseManifestText(text, shown), path, displayPath: shown, baseDir: dirname(path) };
}

export function parseManifestText(text: string, shown: string): Manifest {
  return parseYamlWithSchema(text, shown, manifestSchema, { code: 'manifest', hint: 'see the comments in manifests/versions.yaml for every key' });
}
