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
