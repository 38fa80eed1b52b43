// The SSRF guard: only listed host:port pairs, and only public addresses unless the address itself is listed.
import { describe, expect, it } from 'vitest';
import { isPublicAddress, normalizeHost, WebhookAllowList } from './allow-list.ts';

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

  it('refuses every IPv6 form that embeds an IPv4 address, public or not, however it is written', () => {
    for (const a of [
      // IPv4-compatible (::/96): ::7f00:1 is 127.0.0.1
      '::7f00:1',
      '::127.0.0.1',
      '[::7f00:1]',
      '0:0:0:0:0:0:7f00:1',
      '::a9fe:a9fe', // 169.254.169.254
      '::a00:1', // 10.0.0.1
      '::5db8:d822', // 93.184.216.34: public, still refused in this form
      // IPv4-mapped (::ffff:0:0/96), dotted and hex, public and not
      '::FFFF:7F00:1',
      '0:0:0:0:0:ffff:127.0.0.1',
      '::ffff:a9fe:a9fe',
      '::ffff:93.184.216.34',
      '::ffff:5db8:d822',
      // IPv4-translated and NAT64 prefixes
      '::ffff:0:7f00:1',
      '64:ff9b::7f00:1',
      '64:ff9b:1::a00:1',
      'fe80::1%eth0',
    ]) {
      expect(isPublicAddress(a), a).toBe(false);
    }
    // Just outside ::/96 and ::ffff:0:0/96: ordinary (unassigned) IPv6, not an IPv4 in disguise.
    expect(isPublicAddress('::1:0:0:1')).toBe(true);
  });

  it('writes IPv6 in one canonical form, so a listed address matches however it is spelt', () => {
    expect(normalizeHost('[::FFFF:127.0.0.1]')).toBe('::ffff:7f00:1');
    expect(normalizeHost('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(normalizeHost('Hooks.Example.COM')).toBe('hooks.example.com');
    expect(normalizeHost('127.0.0.1')).toBe('127.0.0.1');
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
    // The same loopback in IPv6 disguise is not the listed 127.0.0.1, and not public either.
    expect(list.refuseUrl('http://[::ffff:127.0.0.1]:9000/hook')).toMatch(/not on/);
    expect(list.refuseUrl('http://[::7f00:1]:9000/hook')).toMatch(/not on/);
    expect(list.refuseUrl('http://evil.example.com/')).toMatch(/not on/);
  });

  it('refuses other schemes, credentials and garbage', () => {
    expect(list.refuseUrl('ftp://hooks.example.com/')).toMatch(/http/);
    expect(list.refuseUrl('https://u:p@hooks.example.com/')).toMatch(/credentials/);
    expect(list.refuseUrl('not a url')).toMatch(/absolute/);
  });

  it('lets a private address through only when that address is listed, on its listed port', () => {
    expect(list.addressAllowed('127.0.0.1', 9000)).toBe(true);
    expect(list.addressAllowed('10.0.0.1', 80)).toBe(false);
    expect(list.addressAllowed('93.184.216.34', 80)).toBe(true);
    expect(list.addressAllowed('93.184.216.34', 6379)).toBe(true); // public: the name's own entry decides
    // A resolver answering with an IPv4-compatible or -mapped address of loopback gets no exemption.
    expect(list.addressAllowed('::7f00:1', 9000)).toBe(false);
    expect(list.addressAllowed('::ffff:127.0.0.1', 9000)).toBe(false);
    expect(list.addressAllowed('0:0:0:0:0:0:0:1', 9001)).toBe(true); // listed as [::1]:9001
  });

  it('does not let a listed name reach other ports of a listed private address', () => {
    // hooks.example.com (80/443) re-pointed at 127.0.0.1: only 127.0.0.1:9000 is listed, not :80 or :443.
    expect(list.addressAllowed('127.0.0.1', 80)).toBe(false);
    expect(list.addressAllowed('127.0.0.1', 443, 'https:')).toBe(false);
    expect(list.addressAllowed('::1', 9000)).toBe(false);
    const byDefault = new WebhookAllowList(['10.0.0.5']);
    expect(byDefault.addressAllowed('10.0.0.5', 80)).toBe(true);
    expect(byDefault.addressAllowed('10.0.0.5', 443, 'https:')).toBe(true);
    expect(byDefault.addressAllowed('10.0.0.5', 22)).toBe(false);
  });

  it('is empty by default, refusing everything', () => {
    const none = new WebhookAllowList([]);
    expect(none.empty).toBe(true);
    expect(none.refuseUrl('https://hooks.example.com/')).toMatch(/not on/);
  });
});
