/**
 * One computation shared by the callers that wait for it, never an answer
 * older than the call: a call while no run is in flight starts one; calls
 * while a run is in flight all wait for the single run that starts when it
 * ends, so each answer was computed entirely after its call came. Under load
 * the database sees at most one run at a time however many callers there are.
 */
export class SharedRun<T> {
  private running: Promise<T> | null = null;
  private next: Promise<T> | null = null;

  constructor(private readonly compute: () => Promise<T>) {}

  get(): Promise<T> {
    if (this.running === null) return this.start();
    if (this.next === null) {
      const after = this.running.then(
        () => {},
        () => {},
      );
      this.next = after.then(() => {
        this.next = null;
        return this.start();
      });
    }
    return this.next;
  }

  private start(): Promise<T> {
    const run = this.compute();
    this.running = run;
    const clear = () => {
      if (this.running === run) this.running = null;
    };
    run.then(clear, clear);
    return run;
  }
}
