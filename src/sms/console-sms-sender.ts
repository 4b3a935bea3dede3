import type { Logger } from 'pino';
import type { SmsSender } from './sms-sender.js';

/**
 * Development sender: writes the message to the log after a simulated delay.
 * The delay is a timer, so it holds only the request that sent the code, never
 * the event loop. It is refused at boot in production.
 */
export class ConsoleSmsSender implements SmsSender {
  readonly name = 'console';

  constructor(
    private readonly logger: Logger,
    private readonly delayMs: number,
  ) {}

  async send(phoneNumber: string, text: string): Promise<void> {
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    this.logger.info(
      { sms: { to: phoneNumber, text } },
      'SMS (console provider, development only)',
    );
  }
}
