import { Listr, ListrLogger, ProcessOutput, type ListrTask, type ListrTaskWrapper, type ListrDefaultRenderer, type ListrSimpleRenderer } from 'listr2';
import type { ProgressSink } from './sink.js';
import { ProgressTracker, type ItemKind } from './tracker.js';
import { stageLines, totalLine } from './format.js';
import { JsonEvents, jsonTotals } from './json.js';

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
    // Progress goes to stderr so stdout carries only results (paths, JSON). Lines are cut to the
    // terminal's width, never wrapped (the per-image lines are fitted to it already, see format.ts).
    rendererOptions: { collapseSubtasks: false, showErrorMessage: false, formatOutput: 'truncate', logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) } as never,
    fallbackRendererOptions: { logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) } as never,
    collectErrors: false,
  });
  await list.run();
}

/**
 * Runs a command's work with one Progress for the whole run; with `events` (--json) the result, or the
 * failure, is the last event.
 */
export async function withProgress<T>(mode: RendererMode, events: ((line: string) => void) | undefined, work: (p: Progress) => Promise<T>, result: (r: T) => Record<string, unknown>): Promise<T> {
  const progress = new Progress(mode, events ? { events } : {});
  try {
    const r = await work(progress);
    progress.result(result(r));
    return r;
  } catch (e) {
    progress.fail(e);
    throw e;
  } finally {
    progress.close();
  }
}

/** How often the plain view prints the total line while something is transferring (KP_PROGRESS_INTERVAL_MS). */
export function plainInterval(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.KP_PROGRESS_INTERVAL_MS);
  return Number.isInteger(n) && n > 0 ? n : 5000;
}

/** The terminal view redraws at most this often (listr2 repaints on each output change). */
const TTY_EVERY_MS = 200;

interface Stage {
  task: Task;
  kind: ItemKind;
  scope: string | undefined;
  last: number;
}

/**
 * The progress of one command run: one tracker for every stage (so the total line covers the whole
 * build), shown as listr2 task output on a TTY (a line per active item + the total line), plain lines
 * (a line per finished item, the total line every KP_PROGRESS_INTERVAL_MS), or JSON events (`events`).
 */
export class Progress {
  readonly tracker = new ProgressTracker();
  /** The listr2 renderer: silent when the events are JSON (stdout holds nothing else). */
  readonly renderer: RendererMode;
  private readonly json: JsonEvents | undefined;
  private readonly stages: Stage[] = [];
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(mode: RendererMode, opts: { events?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}) {
    this.json = opts.events ? new JsonEvents(this.tracker, opts.events) : undefined;
    this.renderer = this.json ? 'silent' : mode;
    const every = this.renderer === 'default' ? TTY_EVERY_MS : this.renderer === 'plain' ? plainInterval(opts.env) : 0;
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
  }

  /** A sink for one listr2 task (a stage of `kind` items, of bundle `scope` in a build). */
  sink(task: Task, kind: ItemKind, scope?: string): ProgressSink {
    const inner = this.tracker.sink(kind, scope);
    const stage: Stage = { task, kind, scope, last: 0 };
    this.stages.push(stage);
    const mode = this.renderer;
    const draw = (force: boolean) => {
      if (mode === 'default' && (force || Date.now() - stage.last >= TTY_EVERY_MS)) this.draw(stage);
    };
    return {
      start: (item, total) => (inner.start(item, total), draw(true)),
      bytes: (item, n) => (inner.bytes(item, n), draw(false)),
      cached: (item, n) => (inner.cached?.(item, n), draw(false)),
      done: (item, detail) => {
        inner.done(item, detail);
        if (mode === 'default') draw(true);
        else if (mode === 'plain') task.output = `${item}: done${detail ? ` (${detail})` : ''}`;
      },
      note: (item, message) => {
        inner.note(item, message);
        if (mode !== 'silent') task.output = `${item}: ${message}`;
      },
    };
  }

  /** --json: the command's result, the last event. */
  result(fields: Record<string, unknown>): void {
    this.json?.emit('result', { ...fields, totals: jsonTotals(this.tracker.totals()) });
  }

  /** --json: the failure that ends the command (stderr has it too, from the top-level catch). */
  fail(e: unknown): void {
    if (!this.json) return;
    const err = e as { message?: unknown; hint?: unknown; code?: unknown };
    this.json.emit('error', {
      item: null,
      message: typeof err?.message === 'string' ? err.message : String(e),
      ...(typeof err?.hint === 'string' ? { hint: err.hint } : {}),
      ...(typeof err?.code === 'string' ? { code: err.code } : {}),
    });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private draw(stage: Stage): void {
    stage.last = Date.now();
    const active = this.tracker.active(stage.scope).filter((s) => s.kind === stage.kind);
    // listr2 indents task output by up to 6 columns (subtask + output icon) and cuts at the width.
    const width = Math.max(20, (process.stderr.columns || 80) - 8);
    const rows = Math.max(3, (process.stderr.rows || 24) - 12);
    stage.task.output = stageLines(active, this.tracker.totals(), stage.last, width, rows).join('\n');
  }

  private tick(): void {
    const busy = this.stages.filter((s) => this.tracker.active(s.scope).some((i) => i.kind === s.kind));
    if (this.renderer === 'default') for (const s of busy) this.draw(s);
    else if (busy.length > 0) busy[busy.length - 1]!.task.output = totalLine(this.tracker.totals());
  }
}
