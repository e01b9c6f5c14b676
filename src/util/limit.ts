/**
 * At most `n` tasks at once; the others wait, lowest `rank` first, then in call order (no rank: ''). The
 * one limiter of the project (both image engines use it). `p-limit` would do the same in call order, but
 * it is not a dependency and has no ranks; this is 40 lines.
 */
export function createLimiter(n: number): <T>(fn: () => Promise<T>, rank?: string) => Promise<T> {
  let active = 0;
  const queue: { rank: string; run: () => void }[] = [];
  const next = () => {
    if (active >= n) return;
    const task = queue.shift();
    if (task) {
      active++;
      task.run();
    }
  };
  return <T>(fn: () => Promise<T>, rank = '') =>
    new Promise<T>((resolve, reject) => {
      const run = () => {
        // A task that throws synchronously must reject its own promise, not escape into the queue.
        new Promise<T>((res) => res(fn()))
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      };
      // After every waiting task of the same or a lower rank: call order within a rank.
      let i = queue.length;
      while (i > 0 && queue[i - 1]!.rank > rank) i--;
      queue.splice(i, 0, { rank, run });
      next();
    });
}
