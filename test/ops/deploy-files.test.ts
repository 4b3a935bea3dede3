import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// A dependency of @fastify/swagger; the tests only read YAML with it.
import { parse as parseYaml } from 'yaml';
import { execForm, parseDockerfile, parseEnvArgs } from '../../scripts/docker-dry-run.js';
import { SmsDeliveryError } from '../../src/sms/sms-sender.js';
import { WebhookSmsSender } from '../../src/sms/webhook-sms-sender.js';
import { createTestApp, type TestApp } from '../helper.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

type Rule = {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
};
type Panel = {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  gridPos: { x: number; y: number; w: number; h: number };
};
type Service = {
  image?: string;
  build?: unknown;
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  profiles?: string[];
};

/** Metric names in a PromQL expression: every `name{` selector (all of ours have one). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/([a-zA-Z_:][\w:]*)\{/g)].map((m) => m[1] as string);
}

/** The series a dashboard or an alert may ask for, from a real scrape; `up` is Prometheus' own. */
let exposed: Set<string>;
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
  exposed = new Set(['up']);
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exposed.add(name as string);
    if (type === 'histogram' || type === 'summary')
      for (const suffix of ['_bucket', '_sum', '_count']) exposed.add(`${name}${suffix}`);
  }
});
afterAll(async () => {
  await t?.close();
});

describe('Prometheus alert rules (ops/prometheus)', () => {
  const alerts = parseYaml(read('ops/prometheus/alerts.yml')) as {
    groups: { name: string; rules: Rule[] }[];
  };
  const rules = alerts.groups.flatMap((group) => group.rules);

  it('parse, and each rule has an expression, a severity and a summary', () => {
    expect(rules.length).toBeGreaterThanOrEqual(4);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^[A-Z]\w+$/);
      expect(rule.expr.trim().length, rule.alert).toBeGreaterThan(0);
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels.severity);
      expect(rule.annotations.summary, rule.alert).toEqual(expect.any(String));
    }
    expect(new Set(rules.map((rule) => rule.alert)).size).toBe(rules.length);
  });

  it('cover SMS spend, the error rate, the outbox backlog, webhooks, fraud flags and instances down', () => {
    const exprOf = (name: string) => rules.find((rule) => rule.alert === name)?.expr ?? '';
    expect(exprOf('SmsSpendNearBudget')).toContain('otp_codes_sent_total');
    expect(exprOf('SmsSpendNearBudget')).toContain('sms_max_per_hour');
    expect(exprOf('HighErrorRate')).toContain('status=~"5.."');
    expect(exprOf('OutboxBacklog')).toContain('outbox_pending');
    expect(exprOf('WebhookDeliveriesGivenUp')).toContain('webhook_deliveries_total');
    expect(exprOf('WebhookDeliveriesGivenUp')).toContain('result="failed"');
    expect(exprOf('FraudFlagsSpike')).toContain('fraud_flags_total');
    expect(exprOf('InstanceDown')).toContain('up{');
  });

  it('ask only for metrics the service exposes, under the job Prometheus scrapes', () => {
    const config = parseYaml(read('ops/prometheus/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: { job_name: string }[];
    };
    expect(config.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    const jobs = config.scrape_configs.map((scrape) => scrape.job_name);
    for (const rule of rules) {
      for (const name of metricNames(rule.expr)) expect(exposed, rule.alert).toContain(name);
      for (const [, job] of rule.expr.matchAll(/job="([^"]+)"/g))
        expect(jobs, rule.alert).toContain(job);
    }
  });
});

describe('Grafana dashboard (ops/grafana/dashboard.json)', () => {
  const dashboard = JSON.parse(read('ops/grafana/dashboard.json')) as {
    uid: string;
    title: string;
    templating: { list: { name: string; type: string; query: unknown }[] };
    panels: Panel[];
  };
  const panels = dashboard.panels.filter((panel) => panel.type !== 'row');

  it('takes its data source as a variable, so it imports into any Grafana', () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe(`\${datasource}`);
      for (const target of panel.targets ?? [])
        expect(target.datasource?.uid, panel.title).toBe(`\${datasource}`);
    }
    expect(JSON.stringify(dashboard)).not.toMatch(/"uid":\s*"(?!\$\{datasource\}|phone-referral)/);
  });

  it('shows every metric of SPEC 7 and the process, and asks only for exposed ones', () => {
    const names = new Set(
      panels.flatMap((panel) => (panel.targets ?? []).flatMap((t) => metricNames(t.expr))),
    );
    for (const name of names) expect(exposed, name).toContain(name);
    for (const name of [
      'http_requests_total',
      'http_request_duration_seconds_bucket',
      'otp_codes_sent_total',
      'otp_verifications_total',
      'sign_ins_total',
      'invite_activations_total',
      'rate_limited_total',
      'webhook_deliveries_total',
      'outbox_pending',
      'fraud_flags_total',
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(names, name).toContain(name);
    }
  });

  it('lays out its panels without overlap, within 24 columns', () => {
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${panel.title} overlaps at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });
});

describe('Dockerfile', () => {
  const stages = parseDockerfile(read('Dockerfile'));
  const runtime = stages.at(-1);
  const of = (keyword: string) =>
    (runtime?.instructions ?? []).filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds in one stage and runs in another, as a non-root user', () => {
    expect(stages.map((stage) => stage.name)).toEqual(['build', 'runtime']);
    for (const stage of stages) expect(stage.base).toMatch(/^node:20-/);
    expect(of('USER')).toEqual(['node']);
    const env = Object.assign({}, ...of('ENV').map(parseEnvArgs));
    expect(env).toMatchObject({ NODE_ENV: 'production', HOST: '0.0.0.0' });
    expect(of('RUN').join('\n')).toContain('npm ci --omit=dev --ignore-scripts');
  });

  it('runs what `npm run start:postgres` runs, and checks /healthz with node alone', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> })
      .scripts;
    expect(execForm(of('CMD')[0] ?? '').join(' ')).toBe(scripts['start:postgres']);
    const [healthcheck = ''] = of('HEALTHCHECK');
    expect(healthcheck).toMatch(/--interval=\S+/);
    const command = execForm(healthcheck);
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    expect(command[2]).toContain('/healthz');
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('!'));
    const sources = stages.flatMap((stage) =>
      stage.instructions
        .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1)),
    );
    expect(sources).toEqual(expect.arrayContaining(['src', 'drizzle', 'web', 'package-lock.json']));
    for (const source of sources) {
      expect(existsSync(join(root, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source.split('/')[0]);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, Service>;
  };
  const services = compose.services;

  it('has PostgreSQL, Redis and two app replicas behind one published port', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['postgres', 'redis', 'app', 'proxy']),
    );
    expect(services.app?.deploy?.replicas).toBe(2);
    expect(services.app?.build).toBe('.');
    expect(services.app?.ports).toBeUndefined();
    const published = Object.entries(services)
      .filter(([, service]) => !service.profiles && service.ports)
      .map(([name, service]) => [name, service.ports]);
    expect(published).toEqual([['proxy', [`\${APP_PORT:-8000}:80`]]]);
    expect(read('ops/nginx/nginx.conf')).toMatch(/server app:8000 resolve;/);
  });

  it('checks the health of every service and starts each after what it needs is healthy', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, name).toBeDefined();
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services), `${name} -> ${dependency}`).toContain(dependency);
        expect(condition, `${name} -> ${dependency}`).toBe('service_healthy');
      }
    }
    expect(Object.keys(services.app?.depends_on ?? {})).toEqual(
      expect.arrayContaining(['postgres', 'redis']),
    );
    expect(Object.keys(services.proxy?.depends_on ?? {})).toEqual(['app']);
  });

  it('runs the app in production with real storage, a secret and an SMS provider', () => {
    expect(services.app?.environment).toMatchObject({
      NODE_ENV: 'production',
      DATABASE_URL: expect.stringMatching(/^postgres:\/\/.*@postgres:5432\//),
      REDIS_URL: 'redis://redis:6379',
      SECRET_KEY: expect.stringMatching(/^\$\{SECRET_KEY:\?/),
      SMS_PROVIDER: `\${SMS_PROVIDER:-webhook}`,
      SMS_WEBHOOK_URL: `\${SMS_WEBHOOK_URL:-http://sms-sink:8080/sms}`,
      TRUST_PROXY: 'true',
    });
  });

  it('mounts only files that are in the repository', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        if (source.startsWith('./')) expect(existsSync(join(root, source)), name).toBe(true);
      }
    }
  });
});

describe('the Compose SMS sink (ops/sms-sink)', () => {
  let sink: ChildProcess | undefined;
  afterAll(() => {
    sink?.kill();
  });

  it('takes what the webhook provider sends, and refuses a wrong signature', async () => {
    const port = 18_700 + Math.floor(Math.random() * 90);
    sink = spawn(process.execPath, [join(root, 'ops/sms-sink/server.mjs')], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        HOST: '127.0.0.1',
        SMS_WEBHOOK_SECRET: 's1',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    sink.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    const url = `http://127.0.0.1:${port}/sms`;
    for (let i = 0; i < 100; i++) {
      const up = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new WebhookSmsSender({ url, secret: 's1', timeoutMs: 5000 }).send(
      '+79991234567',
      'Your verification code: 1234',
    );
    await expect(
      new WebhookSmsSender({ url, secret: 'wrong', timeoutMs: 5000 }).send('+79991234567', 'x'),
    ).rejects.toThrow(SmsDeliveryError);
    for (let i = 0; i < 50 && !output.includes('\n'); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(JSON.parse(output.trim())).toEqual({
      time: expect.any(String),
      to: '+79991234567',
      text: 'Your verification code: 1234',
    });
  });
});
