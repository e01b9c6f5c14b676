import type { Io } from '../../src/cli.js';

/** An Io that records what the CLI prints, for asserting on messages and exit codes in-process. */
export function captureIo(env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' }): Io & { outText(): string; errText(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env,
    isTTY: false,
    outText: () => out.join('\n'),
    errText: () => err.join('\n'),
  };
}
