/**
 * What long-running stages report. The CLI feeds these into a ProgressTracker (tracker.ts) shown as
 * listr2 task output on a TTY, plain lines otherwise, or JSON events with --json (ui.ts).
 * Every call names the item (image reference, URL, file) it is about.
 */
export interface ProgressSink {
  /** An item (image, binary) started; `total` bytes when known. */
  start(item: string, total?: number): void;
  /** `n` more bytes of `item` were transferred. */
  bytes(item: string, n: number): void;
  /** `n` bytes of `item` were already in the blob cache: done, but not transferred (not in the rate). */
  cached?(item: string, n: number): void;
  /** The item finished; `detail` is a short human note ("12.3 MB, 3 layers, 1 cached"). */
  done(item: string, detail?: string): void;
  /** Something worth a line that is not an error. */
  note(item: string, message: string): void;
}

/** Reports `n` bytes of `item` found in the cache: through `cached`, or as plain bytes on a sink without it. */
export function reportCached(sink: ProgressSink, item: string, n: number): void {
  if (sink.cached) sink.cached(item, n);
  else sink.bytes(item, n);
}

export const silentSink: ProgressSink = {
  start() {},
  bytes() {},
  done() {},
  note() {},
};

/**
 * A sink that holds every event until `release()`, then passes on first every `start` held (so the
 * totals are complete from the first line a view shows), then the other events in the order they came,
 * and everything after as it comes. For work that starts while the items are still being discovered
 * (the registry engine downloads an image's blobs once it is resolved, while the other images are
 * still resolved). Events never released (the work failed first) are dropped.
 */
export function heldSink(to: ProgressSink): ProgressSink & { release(): void } {
  let held: (() => void)[] | undefined = [];
  const starts: (() => void)[] = [];
  const pass = (f: () => void) => (held ? held.push(f) : f());
  return {
    start(item, total) {
      if (held) starts.push(() => to.start(item, total));
      else to.start(item, total);
    },
    bytes: (item, n) => pass(() => to.bytes(item, n)),
    cached: (item, n) => pass(() => reportCached(to, item, n)),
    done: (item, detail) => pass(() => to.done(item, detail)),
    note: (item, message) => pass(() => to.note(item, message)),
    release() {
      if (!held) return;
      const rest = held;
      held = undefined;
      for (const f of starts.splice(0)) f();
      for (const f of rest) f();
    },
  };
}
