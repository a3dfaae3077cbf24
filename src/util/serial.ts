/** Runs async tasks one at a time, in submission order (a failed task does not block later ones). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves when everything submitted so far has finished. */
  async drain(): Promise<void> {
    await this.tail;
  }
}
