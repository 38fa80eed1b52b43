// The security block of the configuration: the API key file's default, rate-limit overrides and the Redis URL.
import { describe, expect, it } from 'vitest';
import { type ConfigError, loadConfig } from './config.ts';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

describe('config: security', () => {
  it('defaults the key file into DATA_DIR, no overrides, no Redis', () => {
    const c = loadConfig({ DATA_DIR: '/tmp/tally-x' });
    expect(c.security.apiKeysPath).toBe('/tmp/tally-x/api-keys.json');
    expect(c.security.rateLimitOverrides.size).toBe(0);
    expect(c.security.rateLimitRedisUrl).toBeUndefined();
    expect(loadConfig({ API_KEYS_FILE: '/etc/tally/keys.json' }).security.apiKeysPath).toBe(
      '/etc/tally/keys.json',
    );
  });

  it('parses overrides keyed exactly like the limiter (issuers may contain ":" and "=")', () => {
    const c = loadConfig({
      RATE_LIMIT_OVERRIDES: ' jwt:https://idp.example/:svc-a=1000, jwt::admin=5,key:0123456789abcdef=500 ',
      RATE_LIMIT_REDIS_URL: 'redis://127.0.0.1:6379/0',
    });
    expect([...c.security.rateLimitOverrides]).toEqual([
      ['jwt:https://idp.example/:svc-a', 1000],
      ['jwt::admin', 5],
      ['key:0123456789abcdef', 500],
    ]);
    expect(c.security.rateLimitRedisUrl).toBe('redis://127.0.0.1:6379/0');
  });

  it('reports every bad override and URL, naming the variable', () => {
    expect(
      problems({
        RATE_LIMIT_OVERRIDES: 'alice=5,jwt::bob=0,key:xyz=3,jwt::carol,jwt::dan=1,jwt::dan=2',
        RATE_LIMIT_REDIS_URL: 'http://x',
      }),
    ).toEqual([
      'RATE_LIMIT_OVERRIDES: the identity must be jwt:<iss>:<sub> or key:<16 hex digits>, got "alice=5"',
      'RATE_LIMIT_OVERRIDES: the limit must be a positive integer, got "jwt::bob=0"',
      'RATE_LIMIT_OVERRIDES: the identity must be jwt:<iss>:<sub> or key:<16 hex digits>, got "key:xyz=3"',
      'RATE_LIMIT_OVERRIDES: expected IDENTITY=LIMIT, got "jwt::carol"',
      'RATE_LIMIT_OVERRIDES: the identity is listed twice, got "jwt::dan=2"',
      'RATE_LIMIT_REDIS_URL: expected redis://host:port or rediss://...',
    ]);
  });
});

describe('config: hardening', () => {
  it('takes AUTH_JWKS_URL over https, or plain http on a loopback host only', () => {
    expect(loadConfig({ AUTH_JWKS_URL: 'https://idp.example.com/jwks' }).auth.jwksUrl).toBe(
      'https://idp.example.com/jwks',
    );
    for (const local of ['http://127.0.0.1:9000/jwks', 'http://localhost/jwks', 'http://[::1]:8/jwks']) {
      expect(loadConfig({ AUTH_JWKS_URL: local }).auth.jwksUrl).toBe(local);
    }
    expect(problems({ AUTH_JWKS_URL: 'http://idp.example.com/jwks' })).toEqual([
      'AUTH_JWKS_URL: must be https:// (plain http only for a loopback host), got "http://idp.example.com/jwks"',
    ]);
    expect(problems({ AUTH_JWKS_URL: 'http://127.0.0.1.evil.example/jwks' })).toHaveLength(1);
    expect(problems({ AUTH_JWKS_URL: 'ftp://idp.example.com/jwks' })).toHaveLength(1);
  });

  it('reads TRUST_PROXY as a flag and bounds downloads per address by default', () => {
    const c = loadConfig({});
    expect(c.security.trustProxy).toBe(false);
    expect(c.security.downloadRateLimitPerMinute).toBe(60);
    expect(loadConfig({ TRUST_PROXY: 'true' }).security.trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '0' }).security.trustProxy).toBe(false);
    expect(problems({ TRUST_PROXY: 'maybe' })).toEqual(['TRUST_PROXY: expected true or false, got "maybe"']);
  });

  it('takes CORS_ALLOWED_ORIGINS as exact origins, none by default, and refuses "*"', () => {
    expect(loadConfig({}).security.corsAllowedOrigins).toEqual([]);
    expect(
      loadConfig({ CORS_ALLOWED_ORIGINS: 'https://dash.example.com, http://127.0.0.1:3000/' }).security
        .corsAllowedOrigins,
    ).toEqual(['https://dash.example.com', 'http://127.0.0.1:3000']);
    expect(problems({ CORS_ALLOWED_ORIGINS: '*' })).toEqual([
      'CORS_ALLOWED_ORIGINS: "*" is not accepted; list each origin, e.g. https://dash.example.com',
    ]);
    expect(problems({ CORS_ALLOWED_ORIGINS: 'https://a.example.com/path' })).toHaveLength(1);
    expect(problems({ CORS_ALLOWED_ORIGINS: 'dash.example.com' })).toHaveLength(1);
  });
});
