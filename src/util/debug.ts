/**
 * The debug channel: with --verbose or KUBEPREPARE_DEBUG=1 each event is one line on stderr,
 * `debug <topic>: <message>`. Topics: http (each request: method, URL, status, bytes, time), retry (a
 * try again and why), mirror (endpoint order and fallbacks), auth (token fetches: realm and scope;
 * where credentials come from), cache (hits), docker (re-tags and reference removals), binary
 * (binary downloads). Off, `debug` costs one test. Never given a secret: URLs go through `safeUrl`,
 * and callers name where credentials come from, never their values.
 */
let sink: ((line: string) => void) | undefined;

/** Turns the channel on (`write` receives each line) or off (undefined); the CLI does this once at start. */
export function setDebug(write: ((line: string) => void) | undefined): void {
  sink = write;
}

/** Whether the environment asks for debug output (KUBEPREPARE_DEBUG=1, true or yes). */
export function debugFromEnv(env: NodeJS.ProcessEnv): boolean {
  return /^(1|true|yes)$/i.test(env.KUBEPREPARE_DEBUG ?? '');
}

export function debugEnabled(): boolean {
  return sink !== undefined;
}

export function debug(topic: string, message: string): void {
  sink?.(`debug ${topic}: ${message}`);
}

/** Query parameters whose values may be secrets (tokens, signatures of pre-signed CDN URLs: S3, GCS, Azure, Docker Hub's `verify`); shown as `***`. */
const SECRET_PARAM = /token|secret|pass|sig|key|cred|auth|session|code|verify|x-amz-|x-goog-/i;

/** `url` without user info and with the values of secret-looking query parameters masked. */
export function safeUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return String(url).replace(/\?.*$/, '?…');
  }
  u.username = '';
  u.password = '';
  for (const k of [...u.searchParams.keys()]) if (SECRET_PARAM.test(k)) u.searchParams.set(k, '***');
  return u.toString();
}

/** How long since `t0` (Date.now()), for request lines. */
export function since(t0: number): string {
  return `${Date.now() - t0} ms`;
}
