/**
 * Calls made in one turn of the event loop, answered together: the first call
 * of a turn schedules one `run` for the check phase (setImmediate), by which
 * time every request read in the same poll phase has added its own. `run`
 * gets the inputs in the order they came and answers one output for each, at
 * the same index; when it throws, every call of the batch rejects with it.
 * At most `maxBatch` inputs go to one run; more start the next batch.
 *
 * What it saves is per statement, not per row: a round trip, a parse-bind-
 * execute and the wake-up of a database backend (or PGlite's engine) for the
 * whole turn instead of for each request.
 */
export class TurnBatch<In, Out> {
  private pending: { inputs: In[]; outputs: Promise<Out[]> } | null = null;

  constructor(
    private readonly run: (inputs: In[]) => Promise<Out[]>,
    private readonly maxBatch = 256,
  ) {}

  add(input: In): Promise<Out> {
    let batch = this.pending;
    if (batch === null || batch.inputs.length >= this.maxBatch) {
      const inputs: In[] = [];
      const outputs = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.pending?.inputs === inputs) this.pending = null;
        return this.run(inputs);
      });
      batch = { inputs, outputs };
      this.pending = batch;
    }
    const index = batch.inputs.push(input) - 1;
    return batch.outputs.then((outputs) => outputs[index] as Out);
  }
}
