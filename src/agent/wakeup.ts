// Lets the HA loop sleep until its wake time or until something (DCS watch, postmaster exit, API) nudges it.

export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** Wakes the sleeper now, or makes the next wait return at once. */
  nudge(): void {
    if (this.#resolve !== undefined) {
      const resolve = this.#resolve;
      this.#clear();
      resolve();
    } else {
      this.#pending = true;
    }
  }

  wait(ms: number): Promise<void> {
    if (this.#pending || ms <= 0) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(() => {
        this.#clear();
        resolve();
      }, ms);
    });
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#resolve = undefined;
  }
}
