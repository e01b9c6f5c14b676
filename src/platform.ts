import { UserError } from './errors.js';

/** The architectures a bundle can be built for. `arm` means linux/arm/v7 unless a variant is given. */
export const ARCHES = ['amd64', 'arm64', 'arm'] as const;
export type Arch = (typeof ARCHES)[number];

export interface Platform {
  os: 'linux';
  architecture: Arch;
  /** `v8` for arm64 is treated as "no variant"; `v7` (default) or `v6` for arm. */
  variant?: string;
}

export function defaultPlatform(arch: Arch): Platform {
  return arch === 'arm' ? { os: 'linux', architecture: 'arm', variant: 'v7' } : { os: 'linux', architecture: arch };
}

/** `linux/arm64`, `linux/arm/v7` */
export function formatPlatform(p: { os: string; architecture: string; variant?: string | undefined }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
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

/** `linux/arm/v6` → { os, architecture, variant } (any values; no check). */
export function parsePlatformString(s: string): { os: string; architecture: string; variant?: string } {
  const [os = '', architecture = '', variant] = s.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

type PlatformLike = { os?: string; architecture?: string; variant?: string | undefined };

/** containerd's normalised variant: `arm` without a variant is v7, `arm64` v8 is no variant (platforms.Normalize). */
function normVariant(p: PlatformLike): string {
  const v = (p.variant ?? '').toLowerCase();
  if (p.architecture === 'arm') return v === '' || v === '7' ? 'v7' : /^\d$/.test(v) ? `v${v}` : v;
  if (p.architecture === 'arm64') return v === '8' || v === 'v8' ? '' : v;
  return v;
}

/**
 * The platforms an image may have for a bundle of `want`, best first — containerd's `platforms.Only`
 * order, restricted to the same architecture: `arm/v7` takes v7, then v6, then v5 (what containerd on an
 * armv7 host runs); `arm/v6` takes v6, then v5. `amd64` and `arm64` are exact: containerd's Only would
 * also take 386 for amd64 and arm/v8..v5 for arm64, but a bundle never carries another architecture.
 */
export function acceptedPlatforms(want: Platform): Platform[] {
  if (want.architecture !== 'arm') return [{ os: want.os, architecture: want.architecture }];
  const top = Number((want.variant ?? 'v7').replace(/^v/, ''));
  const out: Platform[] = [];
  for (let v = top; v >= 5; v--) out.push({ os: want.os, architecture: 'arm', variant: `v${v}` });
  return out;
}

/**
 * Where `have` ranks among the platforms accepted for `want` (0 = exactly `want`, 1 = the next lower arm
 * variant...), or -1 when it is not accepted (another OS or architecture, arm v8 or a higher variant).
 */
export function platformRank(want: Platform, have: PlatformLike): number {
  if ((have.os ?? '') !== want.os || have.architecture !== want.architecture) return -1;
  const v = normVariant(have);
  return acceptedPlatforms(want).findIndex((p) => normVariant(p) === v);
}

/** True when an image of platform `have` may go into a bundle for `want` (exact, or a lower arm variant). */
export function platformMatches(want: Platform, have: PlatformLike): boolean {
  return platformRank(want, have) >= 0;
}

/** True when `have` is exactly `want` (not a lower variant). */
export function platformExact(want: Platform, have: PlatformLike): boolean {
  return platformRank(want, have) === 0;
}
