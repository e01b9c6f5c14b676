/**
 * The one error type users see. Its message names the file:line, image or URL concerned and how to
 * fix it; the CLI prints it without a stack trace (unless --verbose) and exits with `exitCode`:
 *   2 = bad usage or bad input (manifest, arguments), 1 = failure while working (network, digest, disk).
 */
export type ErrorKind = 'input' | 'runtime';

export class UserError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  constructor(message: string, opts: { kind?: ErrorKind; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.kind = opts.kind ?? 'input';
    this.hint = opts.hint;
  }
  get exitCode(): 1 | 2 {
    return this.kind === 'input' ? 2 : 1;
  }
  /** Shorthand for an error that happened while working (exit code 1). */
  static runtime(message: string, hint?: string, cause?: unknown): UserError {
    return new UserError(message, { kind: 'runtime', hint, cause });
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
