import type { ProgressSink } from './sink.js';

/** What is being transferred: an image (registry/docker engine) or a release binary. */
export type ItemKind = 'image' | 'binary';

/** Bytes per second over the last few seconds (a whole-run average hides stalls and bursts). */
export class RateMeter {
  private readonly samples: [number, number][] = [];
  private sum = 0;
  constructor(private readonly windowMs = 3000) {}

  add(n: number, t: number): void {
    this.sum += n;
    // One sample per 100 ms at most: a fast pull reports every 64 KiB chunk, and this runs for each.
    const last = this.samples[this.samples.length - 1];
    if (last && t - last[0] < 100 && this.samples.length > 1) last[1] = this.sum;
    else this.samples.push([t, this.sum]);
    while (this.samples.length > 2 && this.samples[1]![0] < t - this.windowMs) this.samples.shift();
  }

  rate(t: number): number {
    const first = this.samples[0];
    if (!first) return 0;
    const dt = (t - first[0]) / 1000;
    return dt >= 0.2 ? (this.sum - first[1]) / dt : 0;
  }
}

export interface ItemState {
  item: string;
  kind: ItemKind;
  /** The bundle the item belongs to (build), or none (images). */
  scope?: string;
  /** Size from the manifest/descriptors or Content-Length; unknown for a docker daemon pull. */
  total?: number;
  done: number;
  finished: boolean;
  rate: RateMeter;
}

export interface Totals {
  /** Bytes accounted for (transferred, or found in the blob cache) over every item started so far. */
  bytes: number;
  /** Sum of the known sizes of those items (a finished item counts what it accounted for). */
  total: number;
  items: number;
  finished: number;
  /** Bytes per second transferred (cache hits excluded), over the last few seconds. */
  rate: number;
  /** Seconds left at that rate, when every unfinished item has a known size. */
  eta?: number;
}

export type TrackerEvent =
  | { type: 'start' | 'progress' | 'done'; state: ItemState; detail?: string }
  /** A note names its item, which need not have started (a note before the start, or about a bundle). */
  | { type: 'note'; item: string; kind: ItemKind; scope?: string; message: string };

/**
 * The model behind every progress view: items (per bundle) with bytes done of their total, and the
 * totals over the run. Sinks handed to the stages feed it; views (terminal, plain lines, JSON) listen.
 */
export class ProgressTracker {
  private readonly items = new Map<string, ItemState>();
  private readonly listeners: ((e: TrackerEvent) => void)[] = [];
  private readonly rate = new RateMeter();

  constructor(private readonly now: () => number = Date.now) {
    this.rate.add(0, now());
  }

  on(listener: (e: TrackerEvent) => void): void {
    this.listeners.push(listener);
  }

  /** A sink for one stage: its items are keyed by `scope` too (the same image is in two bundles). */
  sink(kind: ItemKind, scope?: string): ProgressSink {
    const get = (item: string) => this.get(item, kind, scope);
    return {
      start: (item, total) => {
        const s = this.fresh(item, kind, scope);
        if (total !== undefined) s.total = total;
        this.emit({ type: 'start', state: s });
      },
      bytes: (item, n) => this.add(get(item), n, true),
      cached: (item, n) => this.add(get(item), n, false),
      done: (item, detail) => {
        const s = get(item);
        if (s.total !== undefined) s.done = Math.max(s.done, s.total);
        s.total = s.done;
        s.finished = true;
        this.emit({ type: 'done', state: s, ...(detail ? { detail } : {}) });
      },
      note: (item, message) => this.emit({ type: 'note', item, kind, ...(scope !== undefined ? { scope } : {}), message }),
    };
  }

  /** Unfinished items, of one scope if given, in the order they started. */
  active(scope?: string): ItemState[] {
    return [...this.items.values()].filter((s) => !s.finished && (scope === undefined || s.scope === scope));
  }

  totals(): Totals {
    const t = this.now();
    let bytes = 0;
    let total = 0;
    let finished = 0;
    let unknown = false;
    for (const s of this.items.values()) {
      const size = s.total ?? s.done;
      bytes += Math.min(s.done, size);
      total += size;
      if (s.finished) finished++;
      else if (s.total === undefined) unknown = true;
    }
    const rate = this.rate.rate(t);
    const out: Totals = { bytes, total, items: this.items.size, finished, rate };
    if (!unknown && rate > 0) out.eta = Math.max(0, (total - bytes) / rate);
    else if (!unknown && bytes >= total) out.eta = 0;
    return out;
  }

  private add(s: ItemState, n: number, transferred: boolean): void {
    s.done += n;
    if (transferred) {
      const t = this.now();
      s.rate.add(n, t);
      this.rate.add(n, t);
    }
    this.emit({ type: 'progress', state: s });
  }

  private fresh(item: string, kind: ItemKind, scope: string | undefined): ItemState {
    const key = `${scope ?? ''}\u0000${item}`;
    // Started again (a retry, or a second request for the same item): counted once, from zero.
    const s: ItemState = { item, kind, ...(scope !== undefined ? { scope } : {}), done: 0, finished: false, rate: new RateMeter() };
    s.rate.add(0, this.now());
    this.items.delete(key);
    this.items.set(key, s);
    return s;
  }

  /** The item's state; one never started (a cached binary is only `done`) starts here, with an event. */
  private get(item: string, kind: ItemKind, scope: string | undefined): ItemState {
    const s = this.items.get(`${scope ?? ''}\u0000${item}`);
    if (s) return s;
    const n = this.fresh(item, kind, scope);
    this.emit({ type: 'start', state: n });
    return n;
  }

  private emit(e: TrackerEvent): void {
    for (const l of this.listeners) l(e);
  }
}
