// The SSRF guard: only listed host:port pairs, and only public addresses unless the address itself is listed.
import { describe, expect, it } from 'vitest';
import { isPublicAddress, WebhookAllowList } from './allow-list.ts';

describe('isPublicAddress', () => {
  it('refuses loopback, private, link-local, metadata and mapped forms', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      'localhost',
    ]) {
      expect(isPublicAddress(a), a).toBe(false);
    }
    expect(isPublicAddress('93.184.216.34')).toBe(true);
    expect(isPublicAddress('2606:4700::1111')).toBe(true);
  });
});

describe('WebhookAllowList', () => {
  const list = new WebhookAllowList(['hooks.example.com', '127.0.0.1:9000', '[::1]:9001']);

  it('allows listed hosts on the listed (or default) port only', () => {
    expect(list.refuseUrl('https://hooks.example.com/x')).toBeUndefined();
    expect(list.refuseUrl('http://HOOKS.example.com/x')).toBeUndefined();
    expect(list.refuseUrl('https://hooks.example.com:8443/x')).toMatch(/not on WEBHOOK_ALLOWED_HOSTS/);
    expect(list.refuseUrl('http://127.0.0.1:9000/hook')).toBeUndefined();
    expect(list.refuseUrl('http://[::1]:9001/hook')).toBeUndefined();
    expect(list.refuseUrl('http://127.0.0.1:9002/hook')).toMatch(/not on/);
    expect(list.refuseUrl('http://evil.example.com/')).toMatch(/not on/);
  });

  it('refuses other schemes, credentials and garbage', () => {
    expect(list.refuseUrl('ftp://hooks.example.com/')).toMatch(/http/);
    expect(list.refuseUrl('https://u:p@hooks.example.com/')).toMatch(/credentials/);
    expect(list.refuseUrl('not a url')).toMatch(/absolute/);
  });

  it('lets a private address through only when that address is listed', () => {
    expect(list.addressAllowed('127.0.0.1')).toBe(true);
    expect(list.addressAllowed('10.0.0.1')).toBe(false);
    expect(list.addressAllowed('93.184.216.34')).toBe(true);
  });

  it('is empty by default, refusing everything', () => {
    const none = new WebhookAllowList([]);
    expect(none.empty).toBe(true);
    expect(none.refuseUrl('https://hooks.example.com/')).toMatch(/not on/);
  });
});
