/** Wall-clock time during which at least one task of a phase ran (phases of different images overlap). */
export class PhaseClock {
  private active = 0;
  private since = 0;
  private total = 0;

  async time<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active++ === 0) this.since = performance.now();
    try {
      return await fn();
    } finally {
      if (--this.active === 0) this.total += performance.now() - this.since;
    }
  }

  seconds(): number {
    return (this.total + (this.active > 0 ? performance.now() - this.since : 0)) / 1000;
  }
}
