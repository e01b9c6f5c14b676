import { UserError } from '../../errors.js';

/** An HTTP status the registry answered that is not success; carries enough to build a UserError. */
export class RegistryHttpError extends Error {
  constructor(
    readonly status: number,
    readonly url: string,
    readonly body: string,
  ) {
    super(`HTTP ${status} from ${url}${body ? `: ${summarize(body)}` : ''}`);
  }
}

/** Authentication failed at an endpoint (a later mirror endpoint may still work). */
export class RegistryAuthError extends UserError {
  constructor(message: string, hint: string) {
    super(message, { code: 'auth', kind: 'runtime', hint });
    this.name = 'RegistryAuthError';
  }
}

/** A response body on one line, cut at 300 characters, for messages. */
export function summarize(body: string): string {
  const s = body.replace(/\s+/g, ' ').trim();
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
