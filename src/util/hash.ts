import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A pass-through stream that hashes (SHA-256) and counts what flows through it, for a pipeline that
 * copies bytes anyway: `hex()` and `bytes()` once the pipeline has finished.
 */
export function hashingTap(): { stream: Transform; hex: () => string; bytes: () => number } {
  const h = createHash('sha256');
  let n = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, hex: () => h.digest('hex'), bytes: () => n };
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export const SHA256_HEX = /^[a-f0-9]{64}$/;

/**
 * A file read for a copy (into an images archive or a bundle) whose bytes do not hash to the digest
 * recorded for it. Thrown by the copy, after the bytes went into a temp file that is then discarded;
 * callers that own the entry (a cache) evict it and fetch it again, or turn it into a UserError.
 */
export class ContentMismatchError extends Error {
  constructor(
    /** The file that was read. */
    readonly file: string,
    /** Expected and actual SHA-256, hex. */
    readonly expected: string,
    readonly actual: string,
    /** Bytes read. */
    readonly size: number,
  ) {
    super(`${file} does not match its digest: expected sha256:${expected}, got sha256:${actual} (${size} bytes)`);
    this.name = 'ContentMismatchError';
  }
}
