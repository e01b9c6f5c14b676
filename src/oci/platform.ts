import { UserError } from '../errors.js';

/**
 * An image platform as OCI records it (index entries, image configs, `docker inspect`): any values.
 * The bundle's own target platform is the narrower `Platform` of src/platform.ts (linux + amd64, arm64, arm).
 */
export interface Platform {
  os: string;
  architecture: string;
  /** `v7`, `v6`... for arm; `v8` for arm64 is treated as "no variant". */
  variant?: string | undefined;
}

/** A platform as found in untrusted JSON (an index entry's `platform`): any field may be missing. */
export type PlatformLike = { os?: string | undefined; architecture?: string | undefined; variant?: string | undefined };

/** `linux/arm64`, `linux/arm/v7` */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** `linux/arm/v6` → { os, architecture, variant } (any values; no check). */
export function parsePlatformString(s: string): Platform {
  const [os = '', architecture = '', variant] = s.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

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
export function acceptedPlatforms<P extends Platform>(want: P): P[] {
  if (want.architecture !== 'arm') return [{ os: want.os, architecture: want.architecture } as P];
  const top = Number((want.variant ?? 'v7').replace(/^v/, ''));
  const out: P[] = [];
  for (let v = top; v >= 5; v--) out.push({ os: want.os, architecture: 'arm', variant: `v${v}` } as P);
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

/** The platform in an image config (`os`, `architecture`, `variant`). */
export function configPlatform(ref: string, body: Buffer): Platform {
  let j: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    j = JSON.parse(body.toString('utf8')) as typeof j;
  } catch {
    throw UserError.runtime('registry', `the image config of ${ref} is not valid JSON`);
  }
  const os = typeof j.os === 'string' ? j.os : '';
  const architecture = typeof j.architecture === 'string' ? j.architecture : '';
  const variant = typeof j.variant === 'string' && j.variant ? j.variant : undefined;
  return variant ? { os, architecture, variant } : { os, architecture };
}
