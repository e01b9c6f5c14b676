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

export const silentSink: ProgressSink = {
  start() {},
  bytes() {},
  done() {},
  note() {},
};
