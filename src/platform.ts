import { UserError } from './errors.js';
import { formatPlatform, type Platform as OciPlatform } from './oci/platform.js';

// The OCI platform vocabulary and its matching rules live in src/oci/platform.ts; this module keeps the
// bundle's target platform and the `--arch` parsing, and re-exports the rest for its many importers.
export { acceptedPlatforms, formatPlatform, parsePlatformString, platformExact, platformMatches, platformRank, type PlatformLike } from './oci/platform.js';

/** The architectures a bundle can be built for. `arm` means linux/arm/v7 unless a variant is given. */
export const ARCHES = ['amd64', 'arm64', 'arm'] as const;
export type Arch = (typeof ARCHES)[number];

/** The platform a bundle is built for: an OCI platform narrowed to linux and the three architectures. */
export interface Platform extends OciPlatform {
  os: 'linux';
  architecture: Arch;
  /** `v8` for arm64 is treated as "no variant"; `v7` (default) or `v6` for arm. */
  variant?: string;
}

export function defaultPlatform(arch: Arch): Platform {
  return arch === 'arm' ? { os: 'linux', architecture: 'arm', variant: 'v7' } : { os: 'linux', architecture: arch };
}

/**
 * Parses `--arch` values: a comma list of `amd64`, `arm64`, `arm`, `arm/v7`, `arm/v6`.
 * Duplicates are removed; order is kept.
 */
export function parseArchList(value: string): Platform[] {
  const out: Platform[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const p = parseArch(raw);
    const key = formatPlatform(p);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  if (out.length === 0) throw new UserError(`--arch is empty`, { code: 'usage', hint: 'give one or more of amd64, arm64, arm (comma-separated)' });
  return out;
}

export function parseArch(raw: string): Platform {
  const s = raw.trim().toLowerCase().replace(/^linux\//, '');
  switch (s) {
    case 'amd64':
    case 'x86_64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
    case 'aarch64':
    case 'arm64/v8':
      return { os: 'linux', architecture: 'arm64' };
    case 'arm':
    case 'arm/v7':
    case 'armhf':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'arm/v6':
      return { os: 'linux', architecture: 'arm', variant: 'v6' };
    default:
      throw new UserError(`unknown architecture '${raw}'`, { code: 'usage', hint: 'use amd64, arm64, arm (= arm/v7) or arm/v6' });
  }
}
