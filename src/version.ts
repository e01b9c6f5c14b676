import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The package root (holds package.json, manifests/, scripts-templates/), from src/ or dist/. */
export const PACKAGE_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

export const TOOL_VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export const DEFAULT_MANIFEST = join(PACKAGE_ROOT, 'manifests', 'versions.yaml');
export const TEMPLATES_ROOT = join(PACKAGE_ROOT, 'scripts-templates');
