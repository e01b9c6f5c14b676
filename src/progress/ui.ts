import { Listr, ListrLogger, ProcessOutput, type ListrTask, type ListrTaskWrapper, type ListrDefaultRenderer, type ListrSimpleRenderer } from 'listr2';
import type { ProgressSink } from './sink.js';
import { fmtBytes } from '../util/format.js';

export type RendererMode = 'default' | 'plain' | 'silent';

/** listr2's default renderer on a TTY; plain lines (each naming its item) when not a TTY or `CI` is set. */
export function chooseRenderer(opts: { quiet?: boolean; env?: NodeJS.ProcessEnv; isTTY?: boolean }): RendererMode {
  if (opts.quiet) return 'silent';
  const env = opts.env ?? process.env;
  const tty = opts.isTTY ?? Boolean(process.stderr.isTTY);
  return tty && !env.CI ? 'default' : 'plain';
}

export type Task = ListrTaskWrapper<unknown, ListrDefaultRenderer, ListrSimpleRenderer>;

export async function runTasks(tasks: ListrTask[], mode: RendererMode, concurrent = false): Promise<void> {
  const list = new Listr(tasks, {
    concurrent,
    exitOnError: true,
    renderer: mode === 'default' ? 'default' : mode === 'plain' ? 'simple' : 'silent',
    fallbackRenderer: mode === 'silent' ? 'silent' : 'simple',
    // Progress goes to stderr so stdout carries only results (paths, JSON).
    rendererOptions: { collapseSubtasks: false, showErrorMessage: false, logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) } as never,
    fallbackRendererOptions: { logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) } as never,
    collectErrors: false,
  });
  await list.run();
}

/**
 * Maps a stage's ProgressSink onto a listr2 task: on a TTY the task's output line shows per-item bytes,
 * total and rate (throttled); in plain mode only finished items and notes produce a line each.
 */
export function taskSink(task: Task, mode: RendererMode): ProgressSink {
  const totals = new Map<string, { total?: number; done: number }>();
  let bytes = 0;
  const started = Date.now();
  let last = 0;
  const render = (item: string) => {
    const now = Date.now();
    if (mode !== 'default' || now - last < 200) return;
    last = now;
    const t = totals.get(item);
    const rate = bytes / Math.max(0.001, (now - started) / 1000);
    task.output = `${item}: ${fmtBytes(t?.done ?? 0)}${t?.total ? ` of ${fmtBytes(t.total)}` : ''} · total ${fmtBytes(bytes)} at ${fmtBytes(rate)}/s`;
  };
  return {
    start(item, total) {
      totals.set(item, { ...(total !== undefined ? { total } : {}), done: 0 });
      render(item);
    },
    bytes(item, n) {
      bytes += n;
      const t = totals.get(item);
      if (t) t.done += n;
      render(item);
    },
    done(item, detail) {
      if (mode !== 'silent') task.output = `${item}: done${detail ? ` (${detail})` : ''}`;
    },
    note(item, message) {
      if (mode !== 'silent') task.output = `${item}: ${message}`;
    },
  };
}
