import { abortError, abortReason, isAbort } from '../errors.js';
/** Bounded retries with exponential backoff (429 honours Retry-After, capped by maxDelayMs). */
export interface RetryOptions {
  /** Total tries per request, including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** A transport failure worth another try (connection dropped, reset, timed out). */
export class TransientNetworkError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

export function isRetryableNetworkError(e: unknown): boolean {
  if (e instanceof TransientNetworkError) return true;
  const err = e as NodeJS.ErrnoException | undefined;
  if (!err || typeof err !== 'object') return false;
  if (isAbort(err)) return false;
  if (err.code && RETRYABLE_CODES.has(err.code)) return true;
  return /socket hang up|aborted|premature close/i.test(err.message ?? '');
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** Delay before try number `attempt` (1 = the first retry), honouring a Retry-After header. */
export function retryDelayMs(opts: RetryOptions, attempt: number, retryAfter?: string | undefined): number {
  if (retryAfter) {
    const secs = Number(retryAfter);
    let ms: number | undefined;
    if (Number.isFinite(secs) && secs >= 0) ms = secs * 1000;
    else {
      const when = Date.parse(retryAfter);
      if (!Number.isNaN(when)) ms = Math.max(0, when - Date.now());
    }
    if (ms !== undefined) return Math.min(ms, opts.maxDelayMs);
  }
  const exp = opts.baseDelayMs * 2 ** (attempt - 1);
  const jitter = exp * 0.2 * Math.random();
  return Math.min(exp + jitter, opts.maxDelayMs);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal ? abortReason(signal) : abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

