import type { ItemState, ProgressTracker, Totals, TrackerEvent } from './tracker.js';

/**
 * `--json` on build and images: one event per line on stdout (schema version 1, see README "Progress
 * as JSON"). Every event has `v`, `event` and `t` (ms since the command started); item events also
 * `kind`, `item`, `bundle` (build only), the item's `bytes` and `total`, and the run's `totals`.
 */
export const JSON_EVENTS_VERSION = 1;

export type JsonEventName = 'start' | 'progress' | 'done' | 'note' | 'error' | 'result';

export interface JsonTotals {
  bytes: number;
  total: number;
  items: number;
  done: number;
  /** Bytes per second over the last few seconds. */
  rate: number;
  /** Seconds left, or null while a size is unknown. */
  eta: number | null;
}

const PROGRESS_EVERY_MS = 250;

export function jsonTotals(t: Totals): JsonTotals {
  return { bytes: t.bytes, total: t.total, items: t.items, done: t.finished, rate: Math.round(t.rate), eta: t.eta === undefined ? null : Math.round(t.eta * 10) / 10 };
}

/**
 * Writes the tracker's events as JSON lines: `start` and `done` always, `progress` at most every
 * 250 ms per item and once more before its `done` (so each item that moved bytes has one).
 */
export class JsonEvents {
  private readonly started: number;
  private readonly lastProgress = new Map<ItemState, { at: number; bytes: number }>();

  constructor(
    private readonly tracker: ProgressTracker,
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
    tracker.on((e) => this.onEvent(e));
  }

  emit(event: JsonEventName, fields: Record<string, unknown>): void {
    this.write(JSON.stringify({ v: JSON_EVENTS_VERSION, event, t: this.now() - this.started, ...fields }));
  }

  private item(s: ItemState, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { kind: s.kind, item: s.item, ...(s.scope !== undefined ? { bundle: s.scope } : {}), bytes: s.done, total: s.total ?? null, ...extra, totals: jsonTotals(this.tracker.totals()) };
  }

  private onEvent(e: TrackerEvent): void {
    if (e.type === 'note') {
      this.emit('note', { kind: e.kind, item: e.item, ...(e.scope !== undefined ? { bundle: e.scope } : {}), message: e.message });
      return;
    }
    const s = e.state;
    const t = this.now();
    const last = this.lastProgress.get(s);
    if (e.type === 'start') {
      this.lastProgress.set(s, { at: t, bytes: 0 });
      this.emit('start', this.item(s));
    } else if (e.type === 'progress') {
      if (last && t - last.at < PROGRESS_EVERY_MS) return;
      this.progress(s, t);
    } else {
      if (last && last.bytes !== s.done && s.done > 0) this.progress(s, t);
      this.lastProgress.delete(s);
      this.emit('done', this.item(s, e.detail ? { detail: e.detail } : {}));
    }
  }

  private progress(s: ItemState, t: number): void {
    this.lastProgress.set(s, { at: t, bytes: s.done });
    this.emit('progress', this.item(s, { rate: Math.round(s.rate.rate(t)) }));
  }
}
