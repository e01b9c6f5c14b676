import { fmtBytes } from '../util/format.js';
import type { ItemState, Totals } from './tracker.js';

/** `75s` → `1m15s`; `9.4` → `9s`. */
export function fmtDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const rateOf = (bytesPerSec: number) => `${fmtBytes(Math.round(bytesPerSec))}/s`;

/** Cuts `s` to `width` columns, keeping its end (`…/kubeedge/cloudcore:v1.22.0`): the tag tells items apart. */
export function fitLeft(s: string, width: number): string {
  if (s.length <= width) return s;
  if (width <= 1) return s.slice(0, Math.max(0, width));
  return `…${s.slice(s.length - width + 1)}`;
}

/** `12.0 MB / 40.0 MB` (or `12.0 MB` while the size is unknown), padded so that the slashes line up. */
function amount(done: number, total: number | undefined, pad = false): string {
  const d = pad ? fmtBytes(done).padStart(7) : fmtBytes(done);
  if (total === undefined) return pad ? `${d}${' '.repeat(10)}` : d;
  return `${d} / ${pad ? fmtBytes(total).padEnd(7) : fmtBytes(total)}`;
}

const itemRight = (s: ItemState, now: number) => `${amount(s.done, s.total, true)}  ${rateOf(s.rate.rate(now)).padStart(9)}`;

/** One line per active item: name, bytes done of total, rate; fitted to `width` (names padded to `nameWidth`). */
export function itemLine(s: ItemState, now: number, width: number, nameWidth = s.item.length): string {
  const right = itemRight(s, now);
  const room = Math.max(8, Math.min(nameWidth, width - right.length - 2));
  return `${fitLeft(s.item, room).padEnd(room)}  ${right}`.slice(0, width);
}

/** `total 12.0 MB / 40.0 MB  3.1 MB/s  9s left  (2 of 5 done)`, fitted to `width` columns. */
export function totalLine(t: Totals, width = Infinity): string {
  const left = t.eta === undefined ? 'time left unknown' : `${fmtDuration(t.eta)} left`;
  const parts = [`total ${amount(t.bytes, t.total)}`, rateOf(t.rate), left, `(${t.finished} of ${t.items} done)`];
  // Drop from the end what does not fit (the counts first), never cut a figure in half.
  while (parts.length > 1 && parts.join('  ').length > width) parts.pop();
  return parts.join('  ').slice(0, width);
}

/**
 * The terminal view of one stage: a line per active item (at most `maxItems`, then `… N more`) and the
 * total line of the run.
 */
export function stageLines(active: ItemState[], totals: Totals, now: number, width: number, maxItems: number): string[] {
  const shown = active.slice(0, Math.max(1, maxItems));
  const nameWidth = Math.max(0, ...shown.map((s) => s.item.length));
  const lines = shown.map((s) => itemLine(s, now, width, nameWidth));
  if (active.length > shown.length) lines.push(`… ${active.length - shown.length} more`);
  lines.push(totalLine(totals, width));
  return lines;
}
