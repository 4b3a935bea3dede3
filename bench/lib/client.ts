/** Talking to the service during set-up (sign-ins, codes, checks), outside the measured load. */

export type Json = Record<string, unknown>;

export async function call(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  options: { body?: Json; token?: string } = {},
): Promise<{ status: number; json: Json }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(options.body ? { 'content-type': 'application/json' } : {}),
      ...(options.token ? { authorization: `Token ${options.token}` } : {}),
    },
    ...(options.body ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Json) : {} };
}

export async function expectOk(
  promise: Promise<{ status: number; json: Json }>,
  what: string,
): Promise<Json> {
  const { status, json } = await promise;
  if (status !== 200) throw new Error(`${what}: HTTP ${status} ${JSON.stringify(json)}`);
  return json;
}

export async function requestCode(baseUrl: string, phone: string): Promise<string> {
  const json = await expectOk(
    call(baseUrl, 'POST', '/api/auth/request-code/', { body: { phone_number: phone } }),
    `request-code ${phone}`,
  );
  if (typeof json.dev_code !== 'string') throw new Error('request-code gave no dev_code');
  return json.dev_code;
}

export async function signIn(
  baseUrl: string,
  phone: string,
): Promise<{ token: string; user: Json }> {
  const code = await requestCode(baseUrl, phone);
  const json = await expectOk(
    call(baseUrl, 'POST', '/api/auth/verify-code/', { body: { phone_number: phone, code } }),
    `verify-code ${phone}`,
  );
  return { token: json.token as string, user: json.user as Json };
}

/** Runs `work` over `items`, `concurrency` at a time, keeping the order of the results. */
export async function inPool<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}
