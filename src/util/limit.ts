/**
 * At most `n` tasks at once; the others wait in call order. The one limiter of the project (both image
 * engines use it). `p-limit` would do the same, but it is not a dependency; this is 25 lines.
 */
export function createLimiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  const next = () => {
    if (active >= n) return;
    const run = queue.shift();
    if (run) {
      active++;
      run();
    }
  };
  return <T>(fn: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        // A task that throws synchronously must reject its own promise, not escape into the queue.
        new Promise<T>((res) => res(fn()))
          .then(resolve, reject)
          .finally(() => {
            active--;
            next();
          });
      });
      next();
    });
}
