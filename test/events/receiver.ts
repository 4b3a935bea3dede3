import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export const WEBHOOK_SECRET = `whsec_${Buffer.from('test-webhook-secret-0123456789ab').toString('base64')}`;

export type Received = {
  webhookId: string;
  /** The parsed body, verified against the signature with the standardwebhooks library. */
  payload: { id: number; type: string; timestamp: string; data: Record<string, unknown> };
};

/**
 * A webhook receiver on 127.0.0.1, verifying every request with the
 * standardwebhooks library. A request that fails verification is answered
 * 400 and counted in `rejected`; `status` answers the others.
 */
export class Receiver {
  readonly received: Received[] = [];
  rejected = 0;
  status = 204;
  /** Requests that arrived, verified or not. */
  requests = 0;
  /** Leaves requests unanswered while set (a receiver that hangs). */
  hold = false;

  private constructor(private readonly server: http.Server) {}

  static async start(port: number, secret = WEBHOOK_SECRET): Promise<Receiver> {
    const verifier = new Webhook(secret);
    let receiver: Receiver | undefined;
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const self = receiver as Receiver;
        self.requests += 1;
        if (self.hold) return;
        try {
          const payload = verifier.verify(body, request.headers as Record<string, string>);
          self.received.push({
            webhookId: String(request.headers['webhook-id']),
            payload: payload as Received['payload'],
          });
          response.statusCode = self.status;
        } catch {
          self.rejected += 1;
          response.statusCode = 400;
        }
        response.end();
      });
    });
    receiver = new Receiver(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** Deliveries by webhook-id: how many times each arrived. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { webhookId } of this.received)
      counts.set(webhookId, (counts.get(webhookId) ?? 0) + 1);
    return counts;
  }

  ofType(type: string): Received['payload'][] {
    return this.received.map((r) => r.payload).filter((p) => p.type === type);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
