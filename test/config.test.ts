import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadDotEnv } from '../src/config.js';

type Env = Record<string, string | undefined>;

const SECRET = 'production-secret-0123456789abcdef0123456789';
const PRODUCTION: Env = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://app:pw@db.internal:5432/app',
  REDIS_URL: 'redis://cache.internal:6379',
  SECRET_KEY: SECRET,
  SMS_PROVIDER: 'smsru',
  SMSRU_API_ID: 'api-id',
};

/** The ConfigError that loadConfig throws for `env`; fails the test if it does not throw one. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** The problems listed in a ConfigError message, one per `- ` line. */
function problemsOf(env: Env): string[] {
  const [heading, ...lines] = configError(env).message.split('\n');
  expect(heading).toBe('Invalid configuration:');
  for (const line of lines) expect(line.startsWith('- ')).toBe(true);
  return lines.map((line) => line.slice(2));
}

describe('loadConfig defaults', () => {
  it('match the table of SPEC section 2 when nothing is set', () => {
    const config = loadConfig({});

    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 8000,
      HOST: '127.0.0.1',
      DATA_DIR: './data',
      OTP_LENGTH: 4,
      OTP_TTL_SECONDS: 300,
      OTP_MAX_ATTEMPTS: 5,
      OTP_RESEND_COOLDOWN_SECONDS: 60,
      OTP_MAX_PER_PHONE_PER_HOUR: 5,
      OTP_MAX_PER_IP_PER_HOUR: 30,
      SMS_MAX_PER_HOUR: 1000,
      TOKEN_TTL_DAYS: 30,
      DEFAULT_PHONE_REGION: 'RU',
      trustProxy: false,
      SMS_PROVIDER: 'console',
      SMS_CONSOLE_DELAY_MS: 1500,
      LOG_LEVEL: 'info',
      ALLOW_TEST_PHONES: false,
      PHONE_DENIED_REGIONS: '',
      PHONE_ALLOW_NON_MOBILE: false,
      allowedRegions: [],
      deniedRegions: [],
      corsOrigins: [],
      testPhones: [],
      usesDevelopmentSecret: true,
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.SECRET_KEY).toBeUndefined();
    expect(config.secretKey.length).toBeGreaterThanOrEqual(32);
  });

  it('treats empty and blank values as unset', () => {
    const config = loadConfig({ PORT: '', HOST: '   ', TRUST_PROXY: '', DATABASE_URL: '' });

    expect(config.PORT).toBe(8000);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.trustProxy).toBe(false);
    expect(config.DATABASE_URL).toBeUndefined();
  });
});

describe('loadConfig parsing', () => {
  it('reads numbers, trimming surrounding spaces', () => {
    const config = loadConfig({ PORT: ' 9000 ', OTP_LENGTH: '6', TOKEN_TTL_DAYS: '0' });

    expect(config.PORT).toBe(9000);
    expect(config.OTP_LENGTH).toBe(6);
    expect(config.TOKEN_TTL_DAYS).toBe(0);
  });

  it('reads booleans written as true/false, 1/0, yes/no, on/off in any case', () => {
    for (const text of ['true', 'TRUE', '1', 'yes', 'On']) {
      expect(loadConfig({ ALLOW_TEST_PHONES: text }).ALLOW_TEST_PHONES).toBe(true);
    }
    for (const text of ['false', 'False', '0', 'no', 'OFF']) {
      expect(loadConfig({ ALLOW_TEST_PHONES: text }).ALLOW_TEST_PHONES).toBe(false);
    }
  });

  it('reads TRUST_PROXY as off, a number of proxies (true is one), or proxy addresses', () => {
    for (const text of ['false', 'False', '0', 'no', 'OFF']) {
      expect(loadConfig({ TRUST_PROXY: text }).trustProxy, text).toBe(false);
    }
    for (const text of ['true', 'TRUE', '1', 'yes', 'On']) {
      expect(loadConfig({ TRUST_PROXY: text }).trustProxy, text).toBe(1);
    }
    expect(loadConfig({ TRUST_PROXY: ' 2 ' }).trustProxy).toBe(2);
    expect(
      loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.0.2.10,2001:db8::/32 , loopback' }).trustProxy,
    ).toEqual(['10.0.0.0/8', '192.0.2.10', '2001:db8::/32', 'loopback']);
  });

  it('splits CORS_ORIGINS on commas, dropping spaces and empty entries', () => {
    const config = loadConfig({ CORS_ORIGINS: ' https://a.example , https://b.example:8443,, ' });

    expect(config.corsOrigins).toEqual(['https://a.example', 'https://b.example:8443']);
  });

  it('accepts regions in lower case and upper-cases them', () => {
    const config = loadConfig({ PHONE_ALLOWED_REGIONS: 'ru, by,Kz', DEFAULT_PHONE_REGION: 'kz' });

    expect(config.allowedRegions).toEqual(['RU', 'BY', 'KZ']);
    expect(config.DEFAULT_PHONE_REGION).toBe('KZ');
  });

  it('parses SMS_MAX_PER_REGION_PER_HOUR into per-region budgets; empty is off', () => {
    expect(
      loadConfig({ SMS_MAX_PER_REGION_PER_HOUR: 'RU:500, kz : 50,*:20' }).smsPerRegionPerHour,
    ).toEqual({
      regions: { RU: 500, KZ: 50 },
      others: 20,
    });
    expect(loadConfig({ SMS_MAX_PER_REGION_PER_HOUR: 'RU:5' }).smsPerRegionPerHour).toEqual({
      regions: { RU: 5 },
      others: 0,
    });
    expect(loadConfig({}).smsPerRegionPerHour).toEqual({ regions: {}, others: 0 });
  });

  it('parses TEST_PHONE_NUMBERS into phone and code pairs', () => {
    const config = loadConfig({ TEST_PHONE_NUMBERS: '+79990000001:1234, +79990000002:0000' });

    expect(config.testPhones).toEqual([
      { phone: '+79990000001', code: '1234' },
      { phone: '+79990000002', code: '0000' },
    ]);
  });

  it('accepts a comma-separated Redis Cluster seed list', () => {
    const url = 'redis://node-a:7000, rediss://node-b:7001';

    expect(loadConfig({ REDIS_URL: url }).REDIS_URL).toBe(url);
  });

  it('uses SECRET_KEY when it is set', () => {
    const config = loadConfig({ SECRET_KEY: SECRET });

    expect(config.secretKey).toBe(SECRET);
    expect(config.usesDevelopmentSecret).toBe(false);
  });
});

const TRUST_PROXY_EXPECTED =
  'it must be false, true (one proxy), the number of proxies in front (1-100), or comma-separated proxy addresses or CIDRs (e.g. 10.0.0.0/8)';

describe('loadConfig refuses invalid values, naming the variable', () => {
  const cases: [Env, string][] = [
    [{ PORT: 'abc' }, 'PORT is "abc"; it must be a whole number from 0 to 65535'],
    [{ PORT: '70000' }, 'PORT is 70000; it must be a whole number from 0 to 65535'],
    [{ PORT: '80.5' }, 'PORT is "80.5"; it must be a whole number from 0 to 65535'],
    [{ OTP_LENGTH: '2' }, 'OTP_LENGTH is 2; it must be a whole number from 4 to 10'],
    [{ TRUST_PROXY: 'maybe' }, `TRUST_PROXY is "maybe"; ${TRUST_PROXY_EXPECTED}`],
    [{ TRUST_PROXY: '101' }, `TRUST_PROXY is 101; ${TRUST_PROXY_EXPECTED}`],
    [
      { TRUST_PROXY: '10.0.0.0/8,10.0.0.300' },
      `TRUST_PROXY entry "10.0.0.300" is not an IP address or CIDR; ${TRUST_PROXY_EXPECTED}`,
    ],
    [
      { TRUST_PROXY: '10.0.0.0/33,::1' },
      `TRUST_PROXY entry "10.0.0.0/33" is not an IP address or CIDR; ${TRUST_PROXY_EXPECTED}`,
    ],
    [
      { SMS_PROVIDER: 'carrier-pigeon' },
      'SMS_PROVIDER is "carrier-pigeon"; it must be one of: console, twilio, smsru, webhook',
    ],
    [{ NODE_ENV: 'prod' }, 'NODE_ENV is "prod"; it must be one of: development, production, test'],
    [
      { LOG_LEVEL: 'loud' },
      'LOG_LEVEL is "loud"; it must be one of: fatal, error, warn, info, debug, trace, silent',
    ],
    [
      { DATABASE_URL: 'mysql://x' },
      'DATABASE_URL must start with postgres://, postgresql:// or memory://',
    ],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL entry "http://x" must start with redis:// or rediss://'],
    [
      { REDIS_URL: 'redis://a:7000,http://b:7001' },
      'REDIS_URL entry "http://b:7001" must start with redis:// or rediss://',
    ],
    [
      { PHONE_ALLOWED_REGIONS: 'RU,XX' },
      'PHONE_ALLOWED_REGIONS contains "XX", which is not an ISO 3166 region',
    ],
    [
      { PHONE_DENIED_REGIONS: 'KZ,QQ' },
      'PHONE_DENIED_REGIONS contains "QQ", which is not an ISO 3166 region',
    ],
    [
      { PHONE_ALLOWED_REGIONS: 'RU,KZ', PHONE_DENIED_REGIONS: 'kz' },
      'KZ is in both PHONE_ALLOWED_REGIONS and PHONE_DENIED_REGIONS',
    ],
    [{ DEFAULT_PHONE_REGION: 'zz' }, 'DEFAULT_PHONE_REGION is "zz", not an ISO 3166 region'],
    [
      { SMS_MAX_PER_REGION_PER_HOUR: 'RU:500,QQ:5' },
      'SMS_MAX_PER_REGION_PER_HOUR contains "QQ", which is not an ISO 3166 region',
    ],
    ...['RU:0', 'RU:-5', 'RU:1.5', 'RU', 'RU:many', '*:200000000'].map((entry): [Env, string] => [
      { SMS_MAX_PER_REGION_PER_HOUR: `KZ:50,${entry}` },
      `SMS_MAX_PER_REGION_PER_HOUR entry "${entry}" must be <region>:<limit>, a limit from 1 to 100000000, e.g. RU:500 or *:20`,
    ]),
    [
      { SMS_MAX_PER_REGION_PER_HOUR: 'RU:5,ru:6' },
      'SMS_MAX_PER_REGION_PER_HOUR names RU more than once',
    ],
    [
      { SECRET_KEY: 'x'.repeat(31) },
      'SECRET_KEY must be at least 32 characters long (use e.g. `openssl rand -hex 32`)',
    ],
    [
      { TEST_PHONE_NUMBERS: '+79990000001' },
      'TEST_PHONE_NUMBERS entry "+79990000001" must be <phone>:<code> with a 4-digit code',
    ],
    [
      { TEST_PHONE_NUMBERS: '+79990000001:12a4' },
      'TEST_PHONE_NUMBERS entry "+79990000001:12a4" must be <phone>:<code> with a 4-digit code',
    ],
    [
      { OTP_LENGTH: '6', TEST_PHONE_NUMBERS: '+79990000001:1234' },
      'TEST_PHONE_NUMBERS entry "+79990000001:1234" must be <phone>:<code> with a 6-digit code',
    ],
    [{ SMS_WEBHOOK_URL: 'not a url' }, 'SMS_WEBHOOK_URL must be an http(s) URL'],
  ];

  it.each(cases)('%o', (env, problem) => {
    const error = configError(env);

    expect(error.name).toBe('ConfigError');
    expect(error.message).toBe(`Invalid configuration:\n- ${problem}`);
  });

  it('refuses a provider URL that is a URL but not http(s), as its message says', () => {
    expect(problemsOf({ SMS_WEBHOOK_URL: 'ftp://hooks.example/sms' })).toEqual([
      'SMS_WEBHOOK_URL must be an http(s) URL',
    ]);
    expect(problemsOf({ TWILIO_API_URL: 'file:///etc/passwd' })).toEqual([
      'TWILIO_API_URL must be an http(s) URL',
    ]);
  });

  it('reports several problems of the same kind in one message', () => {
    expect(problemsOf({ PORT: 'abc', OTP_LENGTH: '2', TRUST_PROXY: 'maybe' })).toEqual([
      'PORT is "abc"; it must be a whole number from 0 to 65535',
      'OTP_LENGTH is 2; it must be a whole number from 4 to 10',
      `TRUST_PROXY is "maybe"; ${TRUST_PROXY_EXPECTED}`,
    ]);
    expect(
      problemsOf({ DATABASE_URL: 'mysql://x', REDIS_URL: 'http://x', SECRET_KEY: 'short' }),
    ).toEqual([
      'SECRET_KEY must be at least 32 characters long (use e.g. `openssl rand -hex 32`)',
      'DATABASE_URL must start with postgres://, postgresql:// or memory://',
      'REDIS_URL entry "http://x" must start with redis:// or rediss://',
    ]);
  });

  it('reports a malformed value and a semantic problem together, not one at a time', () => {
    const problems = problemsOf({ PORT: 'abc', DATABASE_URL: 'mysql://x', SECRET_KEY: 'short' });

    expect(problems).toContain('PORT is "abc"; it must be a whole number from 0 to 65535');
    expect(problems).toContain(
      'DATABASE_URL must start with postgres://, postgresql:// or memory://',
    );
    expect(problems).toContain(
      'SECRET_KEY must be at least 32 characters long (use e.g. `openssl rand -hex 32`)',
    );
    expect(problems).toHaveLength(3);
  });
});

describe('loadConfig in production', () => {
  it('accepts a complete production configuration', () => {
    const config = loadConfig(PRODUCTION);

    expect(config.NODE_ENV).toBe('production');
    expect(config.usesDevelopmentSecret).toBe(false);
    expect(config.secretKey).toBe(SECRET);
  });

  it('requires DATABASE_URL, REDIS_URL, SECRET_KEY and a real SMS provider, naming each', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      'DATABASE_URL is required in production (NODE_ENV=production): set postgres://user:pass@host/db',
      'REDIS_URL is required in production (NODE_ENV=production): set redis://host:6379',
      'SECRET_KEY is required in production (NODE_ENV=production): set 32+ random characters',
      'SMS_PROVIDER=console only logs codes and is refused in production: set twilio, smsru or webhook',
    ]);
  });

  it.each(['DATABASE_URL', 'REDIS_URL', 'SECRET_KEY'])('refuses to run without %s', (name) => {
    const problems = problemsOf({ ...PRODUCTION, [name]: undefined });

    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name} is required in production`));
  });

  it('refuses the console provider', () => {
    expect(problemsOf({ ...PRODUCTION, SMS_PROVIDER: 'console' })).toEqual([
      'SMS_PROVIDER=console only logs codes and is refused in production: set twilio, smsru or webhook',
    ]);
  });

  it('refuses TEST_PHONE_NUMBERS unless ALLOW_TEST_PHONES=true', () => {
    const withTestPhones = { ...PRODUCTION, TEST_PHONE_NUMBERS: '+79990000001:1234' };

    expect(problemsOf(withTestPhones)).toEqual([
      'TEST_PHONE_NUMBERS is refused in production unless ALLOW_TEST_PHONES=true is set as well',
    ]);
    expect(problemsOf({ ...withTestPhones, ALLOW_TEST_PHONES: 'false' })).toHaveLength(1);
    expect(loadConfig({ ...withTestPhones, ALLOW_TEST_PHONES: 'true' }).testPhones).toEqual([
      { phone: '+79990000001', code: '1234' },
    ]);
  });

  it('allows TEST_PHONE_NUMBERS outside production', () => {
    const config = loadConfig({ NODE_ENV: 'development', TEST_PHONE_NUMBERS: '+79990000001:1234' });

    expect(config.testPhones).toEqual([{ phone: '+79990000001', code: '1234' }]);
  });
});

describe('loadConfig provider settings', () => {
  it('twilio requires TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM', () => {
    expect(problemsOf({ SMS_PROVIDER: 'twilio' })).toEqual([
      'TWILIO_ACCOUNT_SID is required when SMS_PROVIDER=twilio',
      'TWILIO_AUTH_TOKEN is required when SMS_PROVIDER=twilio',
      'TWILIO_FROM is required when SMS_PROVIDER=twilio',
    ]);
    expect(
      problemsOf({
        SMS_PROVIDER: 'twilio',
        TWILIO_ACCOUNT_SID: 'AC1',
        TWILIO_FROM: '+15005550006',
      }),
    ).toEqual(['TWILIO_AUTH_TOKEN is required when SMS_PROVIDER=twilio']);
    const config = loadConfig({
      SMS_PROVIDER: 'twilio',
      TWILIO_ACCOUNT_SID: 'AC1',
      TWILIO_AUTH_TOKEN: 'token',
      TWILIO_FROM: '+15005550006',
    });
    expect(config.SMS_PROVIDER).toBe('twilio');
  });

  it('smsru requires SMSRU_API_ID', () => {
    expect(problemsOf({ SMS_PROVIDER: 'smsru' })).toEqual([
      'SMSRU_API_ID is required when SMS_PROVIDER=smsru',
    ]);
    expect(loadConfig({ SMS_PROVIDER: 'smsru', SMSRU_API_ID: 'id' }).SMSRU_API_ID).toBe('id');
  });

  it('webhook requires SMS_WEBHOOK_URL and SMS_WEBHOOK_SECRET', () => {
    expect(problemsOf({ SMS_PROVIDER: 'webhook' })).toEqual([
      'SMS_WEBHOOK_URL is required when SMS_PROVIDER=webhook',
      'SMS_WEBHOOK_SECRET is required when SMS_PROVIDER=webhook',
    ]);
    expect(
      problemsOf({ SMS_PROVIDER: 'webhook', SMS_WEBHOOK_URL: 'https://hooks.example/sms' }),
    ).toEqual(['SMS_WEBHOOK_SECRET is required when SMS_PROVIDER=webhook']);
    const config = loadConfig({
      SMS_PROVIDER: 'webhook',
      SMS_WEBHOOK_URL: 'https://hooks.example/sms',
      SMS_WEBHOOK_SECRET: 'secret',
    });
    expect(config.SMS_WEBHOOK_URL).toBe('https://hooks.example/sms');
  });

  it('WEBHOOK_URLS are http(s) URLs and need a whsec_ WEBHOOK_SECRET', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(problemsOf({ WEBHOOK_URLS: 'https://a.example/hook' })).toEqual([
      'WEBHOOK_SECRET is required when WEBHOOK_URLS is set',
    ]);
    expect(
      problemsOf({
        WEBHOOK_URLS: 'https://a.example/hook, ftp://b.example',
        WEBHOOK_SECRET: secret,
      }),
    ).toEqual(['WEBHOOK_URLS entry "ftp://b.example" must be an http(s) URL']);
    const wrong =
      'WEBHOOK_SECRET must be whsec_ followed by the base64 of 24 to 64 random bytes ' +
      '(e.g. `echo whsec_$(openssl rand -base64 32)`)';
    for (const bad of [
      'plain-secret',
      'whsec_',
      'whsec_c2hvcnQ=',
      'whsec_not base64!',
      secret.slice(0, -1),
    ]) {
      expect(problemsOf({ WEBHOOK_SECRET: bad }), bad).toEqual([wrong]);
    }
    const config = loadConfig({
      WEBHOOK_URLS: 'https://a.example/hook,http://B.example:8080/x,https://a.example/hook',
      WEBHOOK_SECRET: secret,
    });
    expect(config.webhookUrls).toEqual(['https://a.example/hook', 'http://b.example:8080/x']);
    expect(loadConfig({}).webhookUrls).toEqual([]);
  });

  it('does not require the settings of a provider that is not chosen', () => {
    expect(loadConfig({ SMS_PROVIDER: 'console' }).SMS_PROVIDER).toBe('console');
  });
});

describe('loadDotEnv', () => {
  const names = ['OTP_LENGTH', 'HOST', 'SMS_PROVIDER', 'SMSRU_API_ID', 'CORS_ORIGINS'];
  let dir: string;
  let saved: Env;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    // loadDotEnv consults process.env: start from a known state and restore it after.
    saved = { ...process.env };
    for (const name of names) delete process.env[name];
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    for (const name of Object.keys(process.env)) {
      if (!(name in saved)) delete process.env[name];
    }
    Object.assign(process.env, saved);
  });

  function writeDotEnv(directory: string, text: string): void {
    writeFileSync(join(directory, '.env'), text);
  }

  it('reads variables from .env, letting those already in env win', () => {
    writeDotEnv(
      dir,
      [
        '# settings for this machine',
        'OTP_LENGTH=6',
        'HOST=0.0.0.0',
        'SMS_PROVIDER="smsru"',
        "SMSRU_API_ID='from-file'",
        '',
      ].join('\n'),
    );
    const env: Env = { HOST: '10.0.0.1' };

    loadDotEnv(env, dir);

    expect(env.OTP_LENGTH).toBe('6');
    expect(env.HOST).toBe('10.0.0.1');
    expect(env.SMS_PROVIDER).toBe('smsru');
    expect(env.SMSRU_API_ID).toBe('from-file');
    const config = loadConfig(env);
    expect(config.OTP_LENGTH).toBe(6);
    expect(config.HOST).toBe('10.0.0.1');
    expect(config.SMS_PROVIDER).toBe('smsru');
  });

  it('leaves env unchanged when there is no .env file', () => {
    const env: Env = { PORT: '9000' };

    loadDotEnv(env, dir);

    expect(env).toEqual({ PORT: '9000' });
  });

  // Only the file's variables may be added to env: neither process.env nor an
  // earlier call's file should leak into it.
  it('reads each directory on its own and leaves process.env alone', () => {
    const other = mkdtempSync(join(tmpdir(), 'config-test-'));
    try {
      writeDotEnv(dir, 'OTP_LENGTH=6\n');
      writeDotEnv(other, 'OTP_LENGTH=8\nCORS_ORIGINS=https://a.example\n');
      const first: Env = {};
      const second: Env = {};

      loadDotEnv(first, dir);
      loadDotEnv(second, other);

      expect(first).toEqual({ OTP_LENGTH: '6' });
      expect(second).toEqual({ OTP_LENGTH: '8', CORS_ORIGINS: 'https://a.example' });
      expect(process.env.OTP_LENGTH).toBeUndefined();
      expect(process.env.CORS_ORIGINS).toBeUndefined();
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('server start-up with an invalid configuration', () => {
  it('exits non-zero at once, naming PORT on stderr', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        PORT: 'abc',
        DATABASE_URL: 'memory://',
        LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`server still running after 20 s; stderr: ${stderr}`));
      }, 20_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });

    expect(exitCode).toBe(1);
    expect(stderr).toContain(
      'Invalid configuration:\n- PORT is "abc"; it must be a whole number from 0 to 65535\n',
    );
    expect(stdout).not.toContain('listening');
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 25_000);
});

describe('documentation of the configuration', () => {
  it('.env.example and the README mention every variable', async () => {
    const { readFileSync } = await import('node:fs');
    const { ConfigSchema } = await import('../src/config.js');
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const name of Object.keys(ConfigSchema.properties)) {
      expect(example, name).toMatch(new RegExp(`^# ${name}=`, 'm'));
      expect(readme, name).toContain(`\`${name}\``);
    }
  });
});
