import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';

/**
 * A long-running helper process (registry, containerd, dockerd) started by the harness and stopped
 * by the PID it was started with (never by name). Output goes to `logFile` for failure messages.
 */
export interface ManagedProcess {
  readonly pid: number;
  readonly logFile: string;
  /** Tail of the log, for assertion messages. */
  log(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

export function requireBinary(path: string, aptPackage: string): void {
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install the Debian package '${aptPackage}' (apt-get install ${aptPackage})`);
  }
}

export function startProcess(cmd: string, args: string[], opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): ManagedProcess {
  const out = createWriteStream(opts.logFile, { flags: 'a' });
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
  child.stdout?.pipe(out, { end: false });
  child.stderr?.pipe(out, { end: false });
  let exitedFlag = false;
  const exitPromise = once(child, 'exit').then(() => {
    exitedFlag = true;
  });
  child.on('error', () => {
    exitedFlag = true;
  });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const pid = child.pid;
  return {
    pid,
    logFile: opts.logFile,
    log() {
      try {
        return readFileSync(opts.logFile, 'utf8').split('\n').slice(-30).join('\n');
      } catch {
        return '';
      }
    },
    exited: () => exitedFlag,
    async stop() {
      if (!exitedFlag) {
        process.kill(pid, 'SIGTERM');
        const timer = setTimeout(() => {
          if (!exitedFlag) process.kill(pid, 'SIGKILL');
        }, 15_000);
        await exitPromise;
        clearTimeout(timer);
      }
      out.end();
    },
  };
}

/** Polls `probe` until it returns true (or throws after `timeoutMs`, with the process log). */
export async function waitUntil(what: string, probe: () => Promise<boolean>, proc: ManagedProcess | undefined, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (proc?.exited()) throw new Error(`${what} exited during startup:\n${proc.log()}`);
    try {
      if (await probe()) return;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms (${String(lastErr)})${proc ? `:\n${proc.log()}` : ''}`);
}

/** Runs a command to completion. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A command that exits without reading stdin makes this write fail with EPIPE: not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
