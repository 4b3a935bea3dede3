/** The load generator's process, forked by `runLoad` (measure.ts): one per workload. */
import { runLoadWorker, type WorkerMessage } from './load.js';

try {
  await runLoadWorker();
} catch (error) {
  const message: WorkerMessage = { type: 'error', message: (error as Error).message };
  process.send?.(message, () => process.exit(1));
}
