/**
 * Removes the engine's private tags again, one at a time, as early as is safe:
 *
 * - not before every image of the build is pulled: a tag's removal deletes the layers no other image
 *   references, and an image still to be pulled may share them (it would pull them again);
 * - an image's tag once that image is saved (the rest of the saves and the archive writing run beside
 *   the daemon's deletions; before, every deletion waited for the last save);
 * - never two at once: dockerd deletes under its layer store's one lock (moby layer/layer_store.go
 *   `Release` holds `layerL` through `driver.Remove`), so parallel requests would only queue there.
 *
 * `finish()` removes whatever is left (also after a failure) and resolves when the daemon has deleted
 * everything; removal errors are ignored, as a tag the user removed meanwhile is not the build's problem.
 */
export class Unpinner {
  private readonly waiting = new Set<string>();
  private readonly saved: string[] = [];
  private released = false;
  private chain: Promise<void> = Promise.resolve();
  private first = 0;
  private last = 0;
  private total = 0;

  constructor(private readonly remove: (tag: string) => Promise<void>) {}

  /** A private tag the build created (the image is now in the daemon under it). */
  pinned(tag: string): void {
    if (!this.waiting.has(tag)) this.total++;
    this.waiting.add(tag);
  }

  /** Tags pinned in all (removed or not). */
  get count(): number {
    return this.total;
  }

  /** The image under `tag` is saved: its tag goes once every image is pulled. */
  done(tag: string): void {
    if (!this.waiting.has(tag)) return;
    this.saved.push(tag);
    if (this.released) this.drain();
  }

  /** Every image of the build is pulled: saved images' tags may go from now on. */
  allPulled(): void {
    this.released = true;
    this.drain();
  }

  /** Every remaining tag removed (saved or not); resolves once the daemon has deleted them all. */
  finish(): Promise<void> {
    this.released = true;
    // Tags already queued are skipped by drain (no longer waiting once removed).
    this.saved.push(...this.waiting);
    this.drain();
    return this.chain;
  }

  /** Wall-clock seconds from the first removal's start to the last one's end (0 when none ran). */
  seconds(): number {
    return this.first === 0 ? 0 : (this.last - this.first) / 1000;
  }

  private drain(): void {
    for (const tag of this.saved.splice(0)) {
      if (!this.waiting.delete(tag)) continue;
      this.chain = this.chain.then(async () => {
        if (this.first === 0) this.first = performance.now();
        await this.remove(tag).catch(() => {});
        this.last = performance.now();
      });
    }
  }
}
