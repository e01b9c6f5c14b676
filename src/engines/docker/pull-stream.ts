import { UserError } from '../../errors.js';

/** One JSON message of the daemon's pull progress stream. */
export interface PullEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

/**
 * Reads a `POST /images/create` progress stream to its end, inspecting EVERY event: an `error` or
 * `errorDetail` anywhere fails the pull with the image named (dockerode's followProgress reports
 * success for such streams). A stream that ends without the daemon's final `Status:` line is a failure
 * too (the daemon went away mid-pull). `onDownload` gets byte deltas of layer downloads.
 */
export async function followPull(stream: AsyncIterable<Buffer | string>, what: string, onDownload?: (n: number) => void): Promise<{ digest?: string; status: string }> {
  let buf = '';
  let status: string | undefined;
  let digest: string | undefined;
  const seen = new Map<string, number>();
  const handle = (line: string) => {
    let ev: PullEvent;
    try {
      ev = JSON.parse(line) as PullEvent;
    } catch {
      throw UserError.runtime('docker', `pulling ${what}: the Docker daemon sent an unreadable progress message: ${line.slice(0, 200)}`);
    }
    if (ev.error || ev.errorDetail) {
      const msg = ev.errorDetail?.message ?? ev.error ?? 'unknown error';
      throw UserError.runtime('docker', `pulling ${what} failed: ${msg}`, pullHint(msg));
    }
    const s = ev.status ?? '';
    if (s.startsWith('Status:')) status = s.slice('Status:'.length).trim();
    else if (s.startsWith('Digest:')) digest = s.slice('Digest:'.length).trim();
    if (onDownload && ev.id && s === 'Downloading' && typeof ev.progressDetail?.current === 'number') {
      const prev = seen.get(ev.id) ?? 0;
      const cur = ev.progressDetail.current;
      if (cur > prev) {
        onDownload(cur - prev);
        seen.set(ev.id, cur);
      }
    }
  };
  for await (const chunk of stream) {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) handle(line);
    }
  }
  if (buf.trim()) handle(buf.trim());
  if (status === undefined) {
    throw UserError.runtime('docker', `pulling ${what}: the Docker daemon's progress stream ended without a result`, 'the daemon may have restarted or dropped the connection; try again');
  }
  return { status, ...(digest ? { digest } : {}) };
}

function pullHint(msg: string): string {
  if (/no matching manifest|does not match the specified platform/i.test(msg)) return 'the image is not built for the requested platform; pick another architecture or image';
  if (/not found|manifest unknown|does not exist/i.test(msg)) return 'check the image name and tag, and the mirrors configured in the Docker daemon';
  if (/unauthorized|authentication required|denied/i.test(msg)) return 'check the credentials in ~/.docker/config.json (docker login) or --docker-config';
  return 'check the Docker daemon log and its registry/mirror configuration';
}
