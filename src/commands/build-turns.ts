/**
 * The order in which a build's bundles fetch while they all run at once (src/commands/build.ts): a
 * bundle starts fetching once the previous one's images are resolved, so that a blob two bundles share
 * is already on its way (the registry engine shares it) or in the cache, and one bundle's tarball is
 * written while the next one downloads.
 */
import type { ProgressSink } from '../progress/sink.js';

export interface FetchTurn {
  /** Resolves when the previous bundle has fetched everything (or failed). */
  wait: Promise<void>;
  /** This bundle is done fetching (or failed): the next one may start. Idempotent. */
  release(): void;
}

/**
 * The sink of a bundle's images, which gives the turn to the next bundle once the images are resolved
 * (the engine reports `start` per image, then queues the downloads in the same tick): the next bundle
 * resolves and downloads alongside, and a blob already on its way is shared (the engine's in-flight map).
 */
export function releasingTurn(sink: ProgressSink, turn: FetchTurn): ProgressSink {
  // Every other method (optional ones such as `cached` included) is the sink's own.
  return Object.assign(Object.create(sink) as ProgressSink, {
    start(item: string, total?: number) {
      sink.start(item, total);
      setImmediate(turn.release);
    },
  });
}

/** One turn per bundle, in plan order: turn i starts when turn i-1 was released. */
export function fetchTurns(n: number): FetchTurn[] {
  const turns: FetchTurn[] = [];
  let previous: Promise<void> = Promise.resolve();
  for (let i = 0; i < n; i++) {
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    turns.push({ wait: previous, release });
    previous = done;
  }
  return turns;
}
