import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, inCi, type TestApp } from '../helper.js';

/** The little of newman's Node API these tests use (newman ships no type declarations). */
type NewmanStat = { total: number; pending: number; failed: number };
type NewmanExecution = {
  item: { name: string };
  request: { url: { toString(): string } };
  response?: { code: number; text(): string };
  requestError?: Error;
};
type NewmanSummary = {
  run: {
    stats: Record<'requests' | 'assertions' | 'testScripts' | 'prerequestScripts', NewmanStat>;
    failures: { error: { name: string; message: string }; source?: { name?: string } }[];
    executions: NewmanExecution[];
  };
};
type Newman = {
  run(
    options: {
      collection: unknown;
      environment?: unknown;
      envVar?: { key: string; value: string }[];
      reporters: string[];
    },
    callback: (error: Error | null, summary: NewmanSummary) => void,
  ): unknown;
};

const newman = createRequire(import.meta.url)('newman') as Newman;

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const ourCollectionPath = path.join(repoRoot, 'postman/collection.json');
const ourEnvironmentPath = path.join(repoRoot, 'postman/environment.json');
// The reference implementation's own files, which we do not copy into the repository: they are read
// from shared/ beside the checkout, as CI clones it.
const referenceDir = path.resolve(repoRoot, '../shared/reference');
const referenceCollectionPath = path.join(referenceDir, 'postman_collection.json');
const referenceEnvironmentPath = path.join(referenceDir, 'postman_environment_demo.json');
const missingReference = [referenceCollectionPath, referenceEnvironmentPath].filter(
  (file) => !existsSync(file),
);
const REFERENCE_MISSING =
  `${missingReference.join(' and ')} ${missingReference.length > 1 ? 'do' : 'does'} not exist. ` +
  "The reference implementation's own Postman collection and environment must run green " +
  'unchanged; the suite reads them from ../shared/reference beside the repository (CI clones ' +
  'the repository next to shared/), never from a copy in the repository.';
// Skipped on a machine without shared/; in CI, where it is always there, its absence fails the run.
const skipReference = missingReference.length > 0 && !inCi();
if (skipReference) {
  console.warn(
    `Skipping "runs the reference collection unchanged": ${REFERENCE_MISSING} ` +
      'With CI set, this is a failure.',
  );
}

/**
 * Our collection: 17 requests; 52 assertions, 35 in the requests' own tests plus the
 * collection-level "answers JSON" once per request.
 */
const OUR_REQUESTS = 17;
const OUR_ASSERTIONS = 52;
/** The reference collection: 4 requests with one (non-asserting) pm.test each. */
const REFERENCE_REQUESTS = 4;
const REFERENCE_ASSERTIONS = 4;
/** Starting PGlite and newman's script sandbox takes seconds, more on a busy CI machine. */
const RUN_TIMEOUT_MS = 120_000;

type PostmanScript = { listen?: string; script?: { exec?: string | string[] } };
type PostmanNode = { name?: string; item?: PostmanNode[]; event?: PostmanScript[] };

function testsIn(node: PostmanNode): number {
  let count = 0;
  for (const event of node.event ?? []) {
    if (event.listen !== 'test') continue;
    const exec = event.script?.exec ?? [];
    const source = Array.isArray(exec) ? exec.join('\n') : exec;
    count += source.match(/\bpm\.test\(/g)?.length ?? 0;
  }
  return count;
}

/**
 * The requests of a collection and the pm.test calls each runs (its own plus those of the folders
 * and collection around it), counted from the scripts' text: every test in our scripts is
 * unconditional, so each of them must show up in the run.
 */
function plannedRun(node: PostmanNode, inherited = 0): { requests: number; assertions: number } {
  const here = inherited + testsIn(node);
  if (!node.item) return { requests: 1, assertions: here };
  let requests = 0;
  let assertions = 0;
  for (const child of node.item) {
    const planned = plannedRun(child, here);
    requests += planned.requests;
    assertions += planned.assertions;
  }
  return { requests, assertions };
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
}

function runNewman(collection: unknown, environment: unknown, baseUrl: string) {
  return new Promise<NewmanSummary>((resolve, reject) => {
    newman.run(
      { collection, environment, envVar: [{ key: 'base_url', value: baseUrl }], reporters: [] },
      (error, summary) => (error ? reject(error) : resolve(summary)),
    );
  });
}

/** Points the environment's base_url at the test server, so nothing else is ever contacted. */
function withBaseUrl(environment: Record<string, unknown>, baseUrl: string) {
  const values = environment.values as { key: string; value: string }[];
  expect(values.some((v) => v.key === 'base_url')).toBe(true);
  return {
    ...environment,
    values: values.map((v) => (v.key === 'base_url' ? { ...v, value: baseUrl } : v)),
  };
}

/** One line per failed assertion or script error, e.g. `Referrals page (A): AssertionError: …`. */
function failuresOf(summary: NewmanSummary): string[] {
  return summary.run.failures.map(
    (f) => `${f.source?.name ?? '?'}: ${f.error.name}: ${f.error.message}`,
  );
}

function expectOnlyLocalRequests(summary: NewmanSummary, port: number) {
  for (const execution of summary.run.executions) {
    const url = new URL(execution.request.url.toString());
    expect(`${url.hostname}:${url.port}`, execution.item.name).toBe(`127.0.0.1:${port}`);
    expect(execution.requestError, execution.item.name).toBeUndefined();
    expect(execution.response, execution.item.name).toBeDefined();
  }
}

type PostmanRequestItem = { name: string; request: { url: { raw: string } } };

function requestsOf(node: PostmanNode): PostmanRequestItem[] {
  return node.item ? node.item.flatMap(requestsOf) : [node as PostmanRequestItem];
}

describe('our Postman files', () => {
  it('are Postman v2.1, with every URL under {{base_url}}', async () => {
    const collection = await readJson(ourCollectionPath);
    const environment = await readJson(ourEnvironmentPath);
    expect((collection.info as { schema: string }).schema).toBe(
      'https://schema.getpostman.com/json/collection/v2.1.0/collection.json',
    );
    for (const item of requestsOf(collection)) {
      expect(item.request.url.raw, item.name).toMatch(/^\{\{base_url\}\}\//);
    }
    // The run's state lives in collection variables: an environment value of the same name would
    // take precedence over them, so the environment holds base_url alone.
    expect(environment._postman_variable_scope).toBe('environment');
    expect(environment.values).toEqual([
      expect.objectContaining({ key: 'base_url', value: expect.stringMatching(/^http.*\/api$/) }),
    ]);
  });
});

describe.each(backends)(
  'Postman collections through newman (%s)',
  {
    timeout: RUN_TIMEOUT_MS,
  },
  (backend) => {
    let t: TestApp | undefined;
    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    async function startServer(): Promise<{ baseUrl: string; port: number }> {
      t = await createTestApp({ backend });
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = t.app.server.address() as AddressInfo;
      return { baseUrl: `http://127.0.0.1:${port}/api`, port };
    }

    it('runs our collection green, every assertion included', async () => {
      const collection = await readJson(ourCollectionPath);
      const environment = await readJson(ourEnvironmentPath);
      expect(plannedRun(collection), 'update OUR_* after changing the collection').toEqual({
        requests: OUR_REQUESTS,
        assertions: OUR_ASSERTIONS,
      });
      const { baseUrl, port } = await startServer();

      const summary = await runNewman(collection, withBaseUrl(environment, baseUrl), baseUrl);

      expect(failuresOf(summary)).toEqual([]);
      expectOnlyLocalRequests(summary, port);
      const { stats } = summary.run;
      expect(stats.requests).toEqual({ total: OUR_REQUESTS, pending: 0, failed: 0 });
      expect(stats.assertions).toEqual({ total: OUR_ASSERTIONS, pending: 0, failed: 0 });
      expect(stats.testScripts.failed).toBe(0);
      expect(stats.prerequestScripts.failed).toBe(0);
      // The run really went through the server: two codes sent, to two distinct fresh numbers.
      const sentTo = new Set(t?.sms.sent.map((m) => m.to));
      expect(sentTo.size).toBe(2);
      for (const phone of sentTo) expect(phone).toMatch(/^\+7999\d{7}$/);
    });

    it('runs our collection twice against one server (fresh numbers each run)', async () => {
      const collection = await readJson(ourCollectionPath);
      const environment = await readJson(ourEnvironmentPath);
      const { baseUrl } = await startServer();
      for (let run = 0; run < 2; run++) {
        const summary = await runNewman(collection, withBaseUrl(environment, baseUrl), baseUrl);
        expect(failuresOf(summary)).toEqual([]);
        expect(summary.run.stats.assertions.total).toBe(OUR_ASSERTIONS);
      }
      expect(new Set(t?.sms.sent.map((m) => m.to)).size).toBe(4);
    });

    it.skipIf(skipReference)('runs the reference collection unchanged', async () => {
      expect(missingReference, `CI is set: ${REFERENCE_MISSING}`).toEqual([]);
      const collection = await readJson(referenceCollectionPath);
      const environment = await readJson(referenceEnvironmentPath);
      expect(plannedRun(collection)).toEqual({
        requests: REFERENCE_REQUESTS,
        assertions: REFERENCE_ASSERTIONS,
      });
      const { baseUrl, port } = await startServer();

      const summary = await runNewman(collection, withBaseUrl(environment, baseUrl), baseUrl);

      expect(failuresOf(summary)).toEqual([]);
      expectOnlyLocalRequests(summary, port);
      const { stats } = summary.run;
      expect(stats.requests).toEqual({ total: REFERENCE_REQUESTS, pending: 0, failed: 0 });
      expect(stats.assertions).toEqual({ total: REFERENCE_ASSERTIONS, pending: 0, failed: 0 });

      // Its own tests assert nothing (`() => code === 200`), so check what the server answered.
      const answers = summary.run.executions.map((execution) => ({
        name: execution.item.name,
        status: execution.response?.code,
        body: JSON.parse(execution.response?.text() ?? 'null') as Record<string, unknown>,
      }));
      expect(answers.map((a) => [a.name, a.status])).toEqual([
        ['Request Auth Code', 200],
        ['Verify Code / Login', 200],
        ['Get Profile', 200],
        // It activates the user's own code, which is refused.
        ['Activate Invite Code', 400],
      ]);
      const [requested, verified, profile, activated] = answers.map((a) => a.body);
      expect(requested).toMatchObject({
        success: true,
        message: 'Verification code sent to your phone number.',
        dev_code: expect.stringMatching(/^\d{4}$/),
      });
      expect(verified).toMatchObject({
        token: expect.any(String),
        is_new_user: true,
        user: {
          id: expect.any(Number),
          phone_number: '+79998887755',
          invite_code: expect.stringMatching(/^[A-Z0-9]{6}$/),
          activated_invite_code: null,
        },
      });
      const user = verified?.user as { id: number; invite_code: string };
      // The token and dev_code went from one request to the next through its environment.
      expect(profile).toEqual({
        id: user.id,
        phone_number: '+79998887755',
        invite_code: user.invite_code,
        activated_invite_code: null,
        referrals: [],
        referrals_count: 0,
      });
      expect(activated).toEqual({
        error: 'You cannot activate your own invite code.',
        code: 'invite_own_code',
      });
    });
  },
);
