// A development receiver for SMS_PROVIDER=webhook (docker-compose.yml): checks
// the signature as a real gateway should, and logs each message instead of
// sending it. Not for real users: anyone who can read its log can sign in.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const secret = process.env.SMS_WEBHOOK_SECRET ?? '';
const maxAgeSeconds = 300;

function signatureValid(timestamp, body, header) {
  const expected = Buffer.from(
    `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`,
  );
  const given = Buffer.from(String(header ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/healthz') {
    response.writeHead(200).end('ok');
    return;
  }
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (chunk) => {
    body += chunk;
  });
  request.on('end', () => {
    const timestamp = Number(request.headers['x-webhook-timestamp']);
    const fresh = Math.abs(Date.now() / 1000 - timestamp) <= maxAgeSeconds;
    if (!fresh || !signatureValid(timestamp, body, request.headers['x-webhook-signature'])) {
      response.writeHead(401).end();
      return;
    }
    const { to, text } = JSON.parse(body);
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), to, text })}\n`);
    response.writeHead(200).end();
  });
}).listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '0.0.0.0');
