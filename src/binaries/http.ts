import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { debug, safeUrl, since } from '../util/debug.js';

export interface RetryPolicy {
  attempts: number;
  /** First back-off in ms; doubles each attempt. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 500, maxDelayMs: 15_000 };

function retryable(status: number): boolean {
  return status === 429 || status === 408 || status >= 500;
}

function retryAfterMs(res: Response): number | undefined {
  const h = res.headers.get('retry-after');
  if (!h) return undefined;
  if (/^\d+$/.test(h)) return Number(h) * 1000;
  const t = Date.parse(h);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/**
 * fetch() with bounded retries for 408/429/5xx (honouring Retry-After) and dropped connections.
 * Returns the first response that is not retryable (callers check `ok`/status). `what` names the item
 * in error messages.
 */
export async function fetchWithRetry(
  url: string,
  init: RequestInit,
  what: string,
  policy: RetryPolicy = DEFAULT_RETRY,
  makeInit?: () => RequestInit,
): Promise<Response> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    let delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    try {
      const t0 = Date.now();
      const res = await fetch(url, makeInit ? makeInit() : init);
      debug('http', `GET ${safeUrl(url)} -> ${res.status}${res.headers.get('content-length') ? `, ${res.headers.get('content-length')} bytes` : ''} (${since(t0)})`);
      if (!retryable(res.status) || attempt === policy.attempts) return res;
      debug('retry', `${what}: ${safeUrl(url)}: HTTP ${res.status}; try ${attempt + 1} of ${policy.attempts}`);
      delay = Math.min(policy.maxDelayMs, retryAfterMs(res) ?? delay);
      await res.body?.cancel().catch(() => {});
      lastError = new Error(`HTTP ${res.status}`);
    } catch (e) {
      if ((init.signal as AbortSignal | undefined)?.aborted) throw e;
      lastError = e;
      if (attempt === policy.attempts) break;
      debug('retry', `${what}: ${safeUrl(url)}: ${(e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message}; try ${attempt + 1} of ${policy.attempts}`);
    }
    await sleep(delay);
  }
  const cause = lastError as Error & { cause?: { code?: string; message?: string } };
  const detail = cause?.cause?.code ?? cause?.cause?.message ?? cause?.message ?? String(lastError);
  throw UserError.runtime('network', `${what}: cannot download ${url} (${detail}) after ${policy.attempts} attempts`, 'check the network or the mirror (--binary-mirror), then run the build again: finished downloads are kept in the cache', lastError);
}
