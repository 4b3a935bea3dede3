import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { isSupportedCountry } from 'libphonenumber-js/max';
import Type, { type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';

/**
 * Every setting of the service, read once at boot from the environment (and a
 * `.env` file). The TypeScript type is derived from this schema: there is no
 * second, hand-written description of the configuration.
 */
const Int = (min: number, max: number, fallback: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: fallback, description });
const Bool = (fallback: boolean, description: string) =>
  Type.Boolean({ default: fallback, description });
const Str = (fallback: string, description: string) =>
  Type.String({ default: fallback, description });
const OptStr = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union(
    [Type.Literal('development'), Type.Literal('production'), Type.Literal('test')],
    { default: 'development', description: 'production | development | test' },
  ),
  PORT: Int(0, 65535, 8000, 'port to listen on'),
  HOST: Str('127.0.0.1', 'address to listen on'),
  REQUEST_TIMEOUT_SECONDS: Int(
    1,
    600,
    10,
    'a client has this long to send a whole request, headers and body; then 408 and the connection is closed',
  ),
  KEEP_ALIVE_TIMEOUT_SECONDS: Int(
    1,
    3600,
    75,
    'an idle keep-alive connection is closed after this; behind a load balancer, set it above the balancer idle timeout',
  ),
  DATABASE_URL: OptStr('postgres://… for PostgreSQL, memory:// for a throwaway PGlite'),
  DATA_DIR: Str('./data', 'embedded database files (PGlite) when DATABASE_URL is unset'),
  DATABASE_POOL_SIZE: Int(1, 1000, 10, 'PostgreSQL connections per instance'),
  CACHE_SIZE: Int(
    0,
    10_000_000,
    10_000,
    'tokens and profiles each instance keeps in memory, coherent across instances (0: off)',
  ),
  SIGN_IN_BATCHING: Bool(
    true,
    'write the sign-ins, and read the uncached profiles, that arrive together in one statement',
  ),
  REDIS_URL: OptStr('redis://… single node, or a comma-separated cluster seed list'),
  STARTUP_TIMEOUT_SECONDS: Int(
    0,
    3600,
    30,
    'how long start-up retries PostgreSQL and Redis before giving up (0: one try)',
  ),
  SHUTDOWN_TIMEOUT_SECONDS: Int(
    1,
    3600,
    10,
    'how long SIGTERM waits for in-flight work before the process exits anyway',
  ),
  SECRET_KEY: OptStr('keys the HMAC of stored one-time codes; 32+ random characters'),
  SMS_PROVIDER: Type.Union(
    [
      Type.Literal('console'),
      Type.Literal('twilio'),
      Type.Literal('smsru'),
      Type.Literal('webhook'),
    ],
    { default: 'console', description: 'console | twilio | smsru | webhook' },
  ),
  SMS_CONSOLE_DELAY_MS: Int(0, 60_000, 1500, 'simulated delivery delay of the console provider'),
  SMS_TIMEOUT_MS: Int(100, 60_000, 10_000, 'timeout of one call to the SMS provider'),
  TWILIO_ACCOUNT_SID: OptStr('Twilio account SID'),
  TWILIO_AUTH_TOKEN: OptStr('Twilio auth token'),
  TWILIO_FROM: OptStr('Twilio sender number (E.164) or messaging service SID (MG…)'),
  TWILIO_API_URL: Str('https://api.twilio.com', 'Twilio API base URL'),
  SMSRU_API_ID: OptStr('SMS.ru api_id'),
  SMSRU_FROM: OptStr('SMS.ru approved sender name'),
  SMSRU_API_URL: Str('https://sms.ru', 'SMS.ru API base URL'),
  SMS_WEBHOOK_URL: OptStr('URL the webhook provider POSTs messages to'),
  SMS_WEBHOOK_SECRET: OptStr('HMAC-SHA256 key of the webhook provider signature header'),
  WEBHOOK_URLS: Str(
    '',
    'comma-separated http(s) URLs each event (user.created, invite.activated) is POSTed to; empty: events are only logged',
  ),
  WEBHOOK_SECRET: OptStr(
    'whsec_<base64>: the Standard Webhooks signing secret, required with WEBHOOK_URLS',
  ),
  OTP_LENGTH: Int(4, 10, 4, 'digits of a one-time code'),
  OTP_TTL_SECONDS: Int(30, 86_400, 300, 'lifetime of a one-time code'),
  OTP_MAX_ATTEMPTS: Int(1, 100, 5, 'wrong guesses before a code is void'),
  OTP_RESEND_COOLDOWN_SECONDS: Int(0, 86_400, 60, 'seconds between two codes to one number'),
  OTP_MAX_PER_PHONE_PER_HOUR: Int(0, 1_000_000, 5, 'codes sent to one number per hour (0: off)'),
  OTP_MAX_PER_IP_PER_HOUR: Int(
    0,
    1_000_000,
    30,
    'codes requested by one client IP per hour (0: off)',
  ),
  OTP_MAX_FAILED_PER_PHONE_PER_HOUR: Int(
    0,
    1_000_000,
    25,
    'wrong guesses per number per hour, across codes (0: off)',
  ),
  OTP_MAX_VERIFY_PER_IP_PER_HOUR: Int(
    0,
    1_000_000,
    300,
    'code verifications per client IP (IPv6: per /64) per hour, sign-ins not counted (0: off)',
  ),
  SMS_MAX_PER_HOUR: Int(0, 100_000_000, 1000, 'global budget of SMS sent per hour (0: off)'),
  SMS_MAX_PER_REGION_PER_HOUR: Str(
    '',
    'SMS sent per hour to the numbers of each region, e.g. RU:500,KZ:50,*:20 (*: each region not listed); empty: off',
  ),
  PHONE_ALLOWED_REGIONS: Str('', 'comma-separated ISO regions, e.g. RU,BY,KZ; empty: all'),
  PHONE_DENIED_REGIONS: Str('', 'comma-separated ISO regions refused even if allowed, e.g. XX,YY'),
  PHONE_ALLOW_NON_MOBILE: Bool(
    false,
    'accept fixed-line, VoIP, toll-free, premium-rate and other non-mobile numbers',
  ),
  CAPTCHA_PROVIDER: Type.Union(
    [Type.Literal('none'), Type.Literal('turnstile'), Type.Literal('hcaptcha')],
    {
      default: 'none',
      description: 'none | turnstile | hcaptcha: required on request-code when set',
    },
  ),
  CAPTCHA_SITE_KEY: OptStr('public site key the web UI renders the widget with'),
  CAPTCHA_SECRET: OptStr('secret key of the CAPTCHA provider'),
  CAPTCHA_VERIFY_URL: OptStr("server-side verify endpoint (default: the provider's)"),
  FRAUD_VELOCITY_PER_HOUR: Int(
    0,
    1_000_000,
    20,
    'an activation is flagged `velocity` when its referrer gained more than this many in the last hour (0: off); a flag never refuses',
  ),
  TEST_PHONE_NUMBERS: Str('', '+79990000001:1234,…: fixed codes, no SMS, no send caps'),
  ALLOW_TEST_PHONES: Bool(false, 'allow TEST_PHONE_NUMBERS in production'),
  TOKEN_TTL_DAYS: Int(0, 36_500, 30, 'API token lifetime in days; 0: never expire'),
  DEFAULT_PHONE_REGION: Str('RU', 'region for numbers written without +'),
  TRUST_PROXY: Str(
    'false',
    'false | true (one proxy) | the number of proxies in front | comma-separated proxy addresses or CIDRs',
  ),
  CORS_ORIGINS: Str('', 'comma-separated allowed origins'),
  METRICS_TOKEN: OptStr('when set, GET /metrics requires Authorization: Bearer <token>'),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'fatal | error | warn | info | debug | trace | silent' },
  ),
});

type RawConfig = Static<typeof ConfigSchema>;

export type TestPhone = { phone: string; code: string };

/** Configuration after validation, with list-valued settings already parsed. */
export type Config = RawConfig & {
  secretKey: string;
  usesDevelopmentSecret: boolean;
  allowedRegions: string[];
  deniedRegions: string[];
  /** SMS_MAX_PER_REGION_PER_HOUR parsed. */
  smsPerRegionPerHour: RegionBudgets;
  corsOrigins: string[];
  /** Raw TEST_PHONE_NUMBERS entries; numbers are normalised when the app is built. */
  testPhones: TestPhone[];
  /** TRUST_PROXY read: off, a number of proxy hops, or the proxies' addresses (Fastify's trustProxy). */
  trustProxy: false | number | string[];
  /** WEBHOOK_URLS parsed and normalised (URL#href). */
  webhookUrls: string[];
};

/** Messages per hour per region: the listed regions, and `others` for each region not listed (0: no budget). */
export type RegionBudgets = { regions: Record<string, number>; others: number };

const MAX_REGION_BUDGET = 100_000_000;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const DEVELOPMENT_SECRET = 'development-only-secret-key-do-not-use-in-production';

function schemaProperty(name: string): TSchema | undefined {
  return (ConfigSchema.properties as Record<string, TSchema>)[name];
}

/** Reads `.env` from `cwd` into `env`; variables already set in `env` win over the file. */
export function loadDotEnv(env: Record<string, string | undefined>, cwd = process.cwd()): void {
  const file = resolve(cwd, '.env');
  if (!existsSync(file)) return;
  const parsed = parseEnv(readFileSync(file, 'utf8'));
  for (const [key, value] of Object.entries(parsed)) {
    if (env[key] === undefined && value !== undefined) env[key] = value;
  }
}

function describeError(name: string, value: unknown): string {
  const schema = schemaProperty(name) as TSchema & Record<string, unknown>;
  const shown = JSON.stringify(value);
  if ('anyOf' in schema) {
    const allowed = (schema.anyOf as { const: string }[]).map((s) => s.const).join(', ');
    return `${name} is ${shown}; it must be one of: ${allowed}`;
  }
  if (schema.type === 'integer') {
    return `${name} is ${shown}; it must be a whole number from ${schema.minimum} to ${schema.maximum}`;
  }
  if (schema.type === 'boolean') return `${name} is ${shown}; it must be true or false`;
  return `${name} is ${shown}; it must be a non-empty string`;
}

function isHttpUrl(value: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const PROXY_ADDRESS_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

function isProxyAddress(entry: string): boolean {
  if (PROXY_ADDRESS_NAMES.includes(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * Which X-Forwarded-For entries to believe. A proxy appends the address it
 * saw, so only the entries added by your own proxies are true; whatever the
 * client sent comes before them. `true` is one proxy: the client is the
 * right-most entry, not the left-most one (a client can write anything
 * there). A number is that many proxies; addresses or CIDRs name the proxies,
 * and the client is the right-most entry not among them.
 */
function parseTrustProxy(text: string): { value: false | number | string[] } | { problem: string } {
  const lower = text.toLowerCase();
  if (['false', 'no', 'off', '0'].includes(lower)) return { value: false };
  if (['true', 'yes', 'on'].includes(lower)) return { value: 1 };
  const expected =
    'it must be false, true (one proxy), the number of proxies in front (1-100), or comma-separated proxy addresses or CIDRs (e.g. 10.0.0.0/8)';
  if (/^\d+$/.test(lower)) {
    const hops = Number(lower);
    return hops <= 100 ? { value: hops } : { problem: `TRUST_PROXY is ${hops}; ${expected}` };
  }
  const entries = parseList(text);
  const wrong = entries.find((entry) => !isProxyAddress(entry));
  if (entries.length === 0 || (wrong !== undefined && entries.length === 1))
    return { problem: `TRUST_PROXY is ${JSON.stringify(text)}; ${expected}` };
  if (wrong !== undefined)
    return { problem: `TRUST_PROXY entry "${wrong}" is not an IP address or CIDR; ${expected}` };
  return { value: entries };
}

/** `RU:500,KZ:50,*:20`: each entry an ISO region (or `*`) and a positive whole number; problems are pushed. */
function parseRegionBudgets(value: string, problems: string[]): RegionBudgets {
  const name = 'SMS_MAX_PER_REGION_PER_HOUR';
  const budgets: RegionBudgets = { regions: {}, others: 0 };
  const seen = new Set<string>();
  for (const entry of parseList(value)) {
    const match = /^([A-Za-z]{2}|\*)\s*:\s*(\d+)$/.exec(entry);
    const region = match?.[1]?.toUpperCase() ?? '';
    const limit = Number(match?.[2]);
    if (!match || !(limit >= 1 && limit <= MAX_REGION_BUDGET)) {
      problems.push(
        `${name} entry "${entry}" must be <region>:<limit>, a limit from 1 to ${MAX_REGION_BUDGET}, e.g. RU:500 or *:20`,
      );
      continue;
    }
    if (region !== '*' && !isSupportedCountry(region)) {
      problems.push(`${name} contains "${match[1]}", which is not an ISO 3166 region`);
      continue;
    }
    if (seen.has(region)) {
      problems.push(`${name} names ${region} more than once`);
      continue;
    }
    seen.add(region);
    if (region === '*') budgets.others = limit;
    else budgets.regions[region] = limit;
  }
  return budgets;
}

/** Standard Webhooks: `whsec_` and the base64 of 24 to 64 random bytes. */
const WEBHOOK_SECRET_FORMAT = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

/** WEBHOOK_URLS, each an http(s) URL, and the WEBHOOK_SECRET they need; problems are pushed. */
function parseWebhooks(raw: RawConfig, problems: string[]): string[] {
  const urls: string[] = [];
  for (const entry of parseList(raw.WEBHOOK_URLS)) {
    if (!isHttpUrl(entry)) {
      problems.push(`WEBHOOK_URLS entry "${entry}" must be an http(s) URL`);
      continue;
    }
    const href = new URL(entry).href;
    if (!urls.includes(href)) urls.push(href);
  }
  const secret = raw.WEBHOOK_SECRET;
  if (secret !== undefined) {
    const base64 = WEBHOOK_SECRET_FORMAT.exec(secret)?.[1];
    const bytes = base64 === undefined ? 0 : Buffer.from(base64, 'base64').length;
    if (base64 === undefined || base64.length % 4 !== 0 || bytes < 24 || bytes > 64) {
      problems.push(
        'WEBHOOK_SECRET must be whsec_ followed by the base64 of 24 to 64 random bytes ' +
          '(e.g. `echo whsec_$(openssl rand -base64 32)`)',
      );
    }
  } else if (urls.length > 0) {
    problems.push('WEBHOOK_SECRET is required when WEBHOOK_URLS is set');
  }
  return urls;
}

/**
 * Validates the environment once, at boot. Any problem throws a ConfigError
 * whose message names each offending variable and what is wrong with it.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const raw = env[key];
    if (raw === undefined || raw.trim() === '') continue;
    const schema = schemaProperty(key) as TSchema & { type?: string };
    const text = raw.trim();
    if (schema.type === 'integer') input[key] = /^-?\d+$/.test(text) ? Number(text) : text;
    else if (schema.type === 'boolean') {
      const lower = text.toLowerCase();
      input[key] = ['true', '1', 'yes', 'on'].includes(lower)
        ? true
        : ['false', '0', 'no', 'off'].includes(lower)
          ? false
          : text;
    } else input[key] = text;
  }
  const withDefaults = Value.Default(ConfigSchema, input) as Record<string, unknown>;
  const problems: string[] = [];
  for (const error of Value.Errors(ConfigSchema, withDefaults)) {
    const name = error.instancePath.replace(/^\//, '').split('/')[0] ?? '';
    if (!name) continue;
    const message = describeError(name, withDefaults[name]);
    if (!problems.includes(message)) problems.push(message);
  }
  // Problems of every kind are gathered and reported together, so one start-up
  // attempt shows everything that needs fixing.
  const raw = withDefaults as RawConfig;
  const production = raw.NODE_ENV === 'production';

  const regionList = (name: 'PHONE_ALLOWED_REGIONS' | 'PHONE_DENIED_REGIONS') => {
    const regions = parseList(raw[name]).map((r) => r.toUpperCase());
    for (const region of regions) {
      if (!isSupportedCountry(region)) {
        problems.push(`${name} contains "${region}", which is not an ISO 3166 region`);
      }
    }
    return regions;
  };
  const allowedRegions = regionList('PHONE_ALLOWED_REGIONS');
  const deniedRegions = regionList('PHONE_DENIED_REGIONS');
  for (const region of deniedRegions) {
    if (allowedRegions.includes(region)) {
      problems.push(`${region} is in both PHONE_ALLOWED_REGIONS and PHONE_DENIED_REGIONS`);
    }
  }
  const smsPerRegionPerHour = parseRegionBudgets(raw.SMS_MAX_PER_REGION_PER_HOUR, problems);
  const defaultRegion = raw.DEFAULT_PHONE_REGION.toUpperCase();
  if (!isSupportedCountry(defaultRegion)) {
    problems.push(`DEFAULT_PHONE_REGION is "${raw.DEFAULT_PHONE_REGION}", not an ISO 3166 region`);
  }

  const testPhones: TestPhone[] = [];
  for (const entry of parseList(raw.TEST_PHONE_NUMBERS)) {
    const match = /^(.+):(\d+)$/.exec(entry);
    if (!match || match[2]?.length !== raw.OTP_LENGTH) {
      problems.push(
        `TEST_PHONE_NUMBERS entry "${entry}" must be <phone>:<code> with a ${raw.OTP_LENGTH}-digit code`,
      );
      continue;
    }
    testPhones.push({ phone: match[1] as string, code: match[2] as string });
  }

  const webhookUrls = parseWebhooks(raw, problems);

  const trustProxy = parseTrustProxy(raw.TRUST_PROXY.trim());
  if ('problem' in trustProxy) problems.push(trustProxy.problem);

  if (raw.SECRET_KEY !== undefined && raw.SECRET_KEY.length < 32) {
    problems.push(
      'SECRET_KEY must be at least 32 characters long (use e.g. `openssl rand -hex 32`)',
    );
  }
  if (raw.DATABASE_URL !== undefined && !/^(postgres(ql)?|memory):\/\//.test(raw.DATABASE_URL)) {
    problems.push('DATABASE_URL must start with postgres://, postgresql:// or memory://');
  }
  if (raw.REDIS_URL !== undefined) {
    for (const seed of parseList(raw.REDIS_URL)) {
      if (!/^rediss?:\/\//.test(seed)) {
        problems.push(`REDIS_URL entry "${seed}" must start with redis:// or rediss://`);
      }
    }
  }
  const need = (condition: boolean, name: string, why: string) => {
    if (condition) problems.push(`${name} is required ${why}`);
  };
  if (raw.SMS_PROVIDER === 'twilio') {
    need(!raw.TWILIO_ACCOUNT_SID, 'TWILIO_ACCOUNT_SID', 'when SMS_PROVIDER=twilio');
    need(!raw.TWILIO_AUTH_TOKEN, 'TWILIO_AUTH_TOKEN', 'when SMS_PROVIDER=twilio');
    need(!raw.TWILIO_FROM, 'TWILIO_FROM', 'when SMS_PROVIDER=twilio');
  }
  if (raw.SMS_PROVIDER === 'smsru')
    need(!raw.SMSRU_API_ID, 'SMSRU_API_ID', 'when SMS_PROVIDER=smsru');
  if (raw.SMS_PROVIDER === 'webhook') {
    need(!raw.SMS_WEBHOOK_URL, 'SMS_WEBHOOK_URL', 'when SMS_PROVIDER=webhook');
    need(!raw.SMS_WEBHOOK_SECRET, 'SMS_WEBHOOK_SECRET', 'when SMS_PROVIDER=webhook');
  }
  if (raw.CAPTCHA_PROVIDER !== 'none') {
    const when = `when CAPTCHA_PROVIDER=${raw.CAPTCHA_PROVIDER}`;
    need(!raw.CAPTCHA_SITE_KEY, 'CAPTCHA_SITE_KEY', when);
    need(!raw.CAPTCHA_SECRET, 'CAPTCHA_SECRET', when);
  }
  for (const name of [
    'SMS_WEBHOOK_URL',
    'TWILIO_API_URL',
    'SMSRU_API_URL',
    'CAPTCHA_VERIFY_URL',
  ] as const) {
    const value = raw[name];
    if (value !== undefined && !isHttpUrl(value)) problems.push(`${name} must be an http(s) URL`);
  }
  if (production) {
    const inProduction = 'in production (NODE_ENV=production)';
    need(!raw.DATABASE_URL, 'DATABASE_URL', `${inProduction}: set postgres://user:pass@host/db`);
    need(!raw.REDIS_URL, 'REDIS_URL', `${inProduction}: set redis://host:6379`);
    need(!raw.SECRET_KEY, 'SECRET_KEY', `${inProduction}: set 32+ random characters`);
    if (raw.SMS_PROVIDER === 'console') {
      problems.push(
        'SMS_PROVIDER=console only logs codes and is refused in production: set twilio, smsru or webhook',
      );
    }
    if (testPhones.length > 0 && !raw.ALLOW_TEST_PHONES) {
      problems.push(
        'TEST_PHONE_NUMBERS is refused in production unless ALLOW_TEST_PHONES=true is set as well',
      );
    }
  }
  if (problems.length > 0)
    throw new ConfigError(`Invalid configuration:\n- ${problems.join('\n- ')}`);

  return {
    ...raw,
    DEFAULT_PHONE_REGION: defaultRegion,
    secretKey: raw.SECRET_KEY ?? DEVELOPMENT_SECRET,
    usesDevelopmentSecret: raw.SECRET_KEY === undefined,
    allowedRegions,
    deniedRegions,
    smsPerRegionPerHour,
    corsOrigins: parseList(raw.CORS_ORIGINS),
    testPhones,
    trustProxy: 'value' in trustProxy ? trustProxy.value : false,
    webhookUrls,
  };
}
