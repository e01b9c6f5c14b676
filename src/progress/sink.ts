/**
 * What long-running stages report. The CLI maps these onto listr2 task output on a TTY, or onto one
 * plain line per finished item otherwise. Every call names the item (image reference, URL, file) it is about.
 */
export interface ProgressSink {
  /** An item (image, binary) started; `total` bytes when known. */
  start(item: string, total?: number): void;
  /** `n` more bytes of `item` were transferred. */
  bytes(item: string, n: number): void;
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
