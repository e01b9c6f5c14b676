import { dirname } from 'node:path';

/**
 * The error story. Three kinds of failure reach the top-level catch (printError, called by the CLI):
 *  - UserError: what users see. Its message names the file:line, image, path or URL concerned and its
 *    hint how to fix it; printed without a stack trace (unless --verbose) and exits with `exitCode`:
 *    2 = bad usage or bad input (manifest, arguments), 1 = failure while working (network, digest, disk).
 *    Its `code` is stable (scripts and tests match it, never the message text).
 *  - InternalError: a bug in this program (a broken invariant); printed as such with its stack, exit 70.
 *  - an abort (abortError/isAbort): the work was stopped, because the caller aborted or a sibling failed;
 *    never the cause reported when another failure is at hand.
 * Anything else is printed with its message (stack with --verbose) and exits 1.
 */
export type ErrorKind = 'input' | 'runtime';

export type ErrorCode =
  /** A flag or argument is wrong. */
  | 'usage'
  /** The versions manifest (or the image data derived from it) is wrong or incomplete. */
  | 'manifest'
  /** Another input file is wrong: registries.yaml, a Docker config, DOCKER_HOST, a bundle path. */
  | 'input'
  /** A script template (scripts-templates/) or what it declares is wrong. */
  | 'template'
  /** An image, tag, blob or file is not where it was looked for. */
  | 'not-found'
  /** Content does not match its digest or size (registry, mirror, download or cache). */
  | 'digest-mismatch'
  /** An image is not (or not only) for the platform asked for. */
  | 'platform'
  /** Credentials missing, refused or unreadable (registry, token service, credential helper). */
  | 'auth'
  /** A registry, mirror or download server cannot be reached or keeps failing. */
  | 'network'
  /** A registry or mirror answered something that is not what the protocol says. */
  | 'registry'
  /** Offline mode refused to contact a host. */
  | 'offline'
  /** The Docker daemon is unreachable or failed. */
  | 'docker'
  /** A format or feature this program does not support (schema 1, zstd layers, nested index). */
  | 'unsupported'
  /** A program this command needs (zstd) is not installed. */
  | 'missing-tool'
  /** A bundle does not verify or is not a readable bundle. */
  | 'bundle'
  /** The cache changed under a running build. */
  | 'cache'
  /** No space left on a filesystem (ENOSPC, EDQUOT). */
  | 'disk'
  /** Permission denied (EACCES, EPERM). */
  | 'permission'
  /** A read-only filesystem (EROFS). */
  | 'read-only';

export interface UserErrorOptions {
  code: ErrorCode;
  kind?: ErrorKind;
  hint?: string | undefined;
  cause?: unknown;
}

export class UserError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  constructor(message: string, opts: UserErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.code = opts.code;
    this.kind = opts.kind ?? 'input';
    this.hint = opts.hint;
  }
  get exitCode(): 1 | 2 {
    return this.kind === 'input' ? 2 : 1;
  }
  /** Shorthand for an error that happened while working (exit code 1). */
  static runtime(code: ErrorCode, message: string, hint?: string, cause?: unknown): UserError {
    return new UserError(message, { code, kind: 'runtime', hint, cause });
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** A bug in this program: an invariant that does not hold. Printed with "this is a bug" and its stack. */
export class InternalError extends Error {
  static readonly EXIT_CODE = 70; // EX_SOFTWARE (sysexits.h)
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'InternalError';
  }
}

/** The one way to make an abort: an Error named AbortError, as Node's own AbortSignal reasons are. */
export function abortError(message = 'the operation was aborted', cause?: unknown): Error {
  const e = new Error(message, cause === undefined ? undefined : { cause });
  e.name = 'AbortError';
  return e;
}

/** Whether `e` is an abort: ours (abortError), an AbortSignal's default reason, or Node's ABORT_ERR. */
export function isAbort(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const err = e as { name?: unknown; code?: unknown };
  return err.name === 'AbortError' || err.code === 'ABORT_ERR';
}

/** What to throw for an aborted signal: its reason, or an abortError when it has none. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? abortError();
}

/** An aborted signal's reason when it is an Error, else an abortError: what a destroyed request or socket fails with. */
export function abortErrorOf(signal: AbortSignal | undefined): Error {
  return signal?.reason instanceof Error ? signal.reason : abortError();
}

/**
 * Failures of the machine rather than of the network or the input: the filesystem is full, refuses
 * permission, or is mounted read-only. errno -> error code, the meaning and the fix, in one place.
 */
const MACHINE: Record<string, { code: ErrorCode; meaning: string; fix: (dir: string) => string }> = {
  ENOSPC: { code: 'disk', meaning: 'no space left on the filesystem', fix: (d) => `free space on the filesystem of ${d} (df -h ${d}) or choose a directory on a larger one (--out, --cache-dir), then run again` },
  EDQUOT: { code: 'disk', meaning: 'the disk quota is exhausted', fix: (d) => `free space within your quota on ${d} or choose another directory (--out, --cache-dir), then run again` },
  EACCES: { code: 'permission', meaning: 'permission denied', fix: (d) => `make ${d} writable for this user (ls -ld ${d}) or choose another directory (--out, --cache-dir)` },
  EPERM: { code: 'permission', meaning: 'operation not permitted', fix: (d) => `make ${d} writable for this user (ls -ld ${d}) or choose another directory (--out, --cache-dir)` },
  EROFS: { code: 'read-only', meaning: 'the filesystem is read-only', fix: (d) => `choose a directory on a writable filesystem (--out, --cache-dir) or remount ${d} read-write` },
};

/** Calls whose EACCES/EPERM is about a socket or a program, not a filesystem (a firewall refusing a connect). */
const NOT_FILESYSTEM = /^(connect|bind|listen|getaddrinfo|kill|spawn|uv_)/;

/** The errno of `e` (or of its cause chain) when it is a machine failure (MACHINE), else undefined. */
function machineErrno(e: unknown): NodeJS.ErrnoException | undefined {
  for (let x = e, depth = 0; typeof x === 'object' && x !== null && depth < 5; x = (x as Error).cause, depth++) {
    if (x instanceof UserError) return undefined;
    const err = x as NodeJS.ErrnoException & { address?: unknown };
    if (typeof err.code === 'string' && err.code in MACHINE) return NOT_FILESYSTEM.test(err.syscall ?? '') || err.address !== undefined ? undefined : err;
  }
  return undefined;
}

/** Whether `e` is a machine failure: no space, permission denied, read-only filesystem. */
export function isMachineFailure(e: unknown): boolean {
  return machineErrno(e) !== undefined || (e instanceof UserError && (e.code === 'disk' || e.code === 'permission' || e.code === 'read-only'));
}

/**
 * `e` as the UserError of its machine failure (exit 1) naming `path` (else the errno's own path), the
 * meaning and the fix for directory `dir` (default: the path's directory); `e` itself when it is not
 * one. `what` says what was being done ("writing", "caching x in").
 */
export function fsError<T>(e: T, path?: string, what = 'writing', dir?: string): T | UserError {
  const err = machineErrno(e);
  if (!err) return e;
  const m = MACHINE[err.code!]!;
  const where = path ?? err.path ?? 'a file';
  return UserError.runtime(m.code, `${what} ${where}: ${m.meaning} (${err.code})`, m.fix(dir ?? dirname(where)), e);
}

/** Prints a failure that reached the top level; returns the exit code. The one place errors are printed. */
export function printError(thrown: unknown, err: (s: string) => void, verbose: boolean): number {
  const e = fsError(thrown);
  if (isUserError(e)) {
    err(`error: ${e.message}`);
    if (e.hint) err(`  fix: ${e.hint}`);
    if (verbose) err(`  code: ${e.code}`);
    if (verbose && e.stack) err(e.stack);
    return e.exitCode;
  }
  if (e instanceof InternalError) {
    err(`error: internal error: ${e.message}`);
    err('  this is a bug in kubeprepare; please report it with the stack trace below');
    err(e.stack ?? '');
    return InternalError.EXIT_CODE;
  }
  const x = e as Error | undefined;
  err(`error: ${x?.message ?? String(e)}`);
  err(verbose ? (x?.stack ?? '') : '  (run with --verbose for the stack trace)');
  return 1;
}
