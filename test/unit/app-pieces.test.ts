import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { serveAdminCommand } from '../../electron/admin/command.ts';
import { ACTIVITY_LIMIT, createActivityLog, decodeEncodedWords } from '../../electron/app/activity.ts';
import { subnetOf, suggestNetworks } from '../../electron/app/network.ts';
import { CHANNELS, PayloadError, validatePayload } from '../../electron/shared/ipc.ts';
import type { ActivityEntry } from '../../electron/shared/ipc.ts';

function row(id: string, overrides: Partial<ActivityEntry> = {}): ActivityEntry {
  return {
    id,
    time: 1,
    device: '10.0.0.5',
    from: 'fax@contoso.com',
    to: ['bob@fabrikam.com'],
    subject: null,
    size: 100,
    result: 'queued',
    reply: null,
    ...overrides,
  };
}

describe('recent activity', () => {
  it('keeps the last 200 rows, newest first, one row per message updated in place', () => {
    const log = createActivityLog();
    for (let i = 0; i < ACTIVITY_LIMIT + 5; i += 1) log.record(row(`m${i}`));
    const rows = log.list();
    expect(rows).toHaveLength(ACTIVITY_LIMIT);
    expect(rows[0]!.id).toBe(`m${ACTIVITY_LIMIT + 4}`);
    expect(rows.at(-1)!.id).toBe('m5');

    expect(log.update('m10', { result: 'delivered', reply: '250 2.0.0 OK' })).toMatchObject({
      result: 'delivered',
    });
    expect(log.list().find((r) => r.id === 'm10')?.reply).toBe('250 2.0.0 OK');
    expect(log.update('m0', { result: 'delivered' })).toBeNull();
  });

  it('decodes the encoded-word subjects that devices send', () => {
    expect(decodeEncodedWords('=?utf-8?B?U2NhbiDDvGJlciBkYXM=?=')).toBe('Scan über das');
    expect(decodeEncodedWords('=?iso-8859-1?Q?Fax_von_M=FCller?=')).toBe('Fax von Müller');
    expect(decodeEncodedWords('=?utf-8?Q?a?= =?utf-8?Q?b?=')).toBe('ab');
    expect(decodeEncodedWords('Plain subject')).toBe('Plain subject');
  });
});

describe("this PC's networks, for the wizard", () => {
  it('suggests the subnet of each LAN address, not loopback or link-local', () => {
    expect(subnetOf('192.168.1.23', '255.255.255.0')).toBe('192.168.1.0/24');
    expect(subnetOf('10.100.102.77', '255.255.254.0')).toBe('10.100.102.0/23');
    const suggestion = suggestNetworks(
      {
        lo: [
          { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', internal: true, mac: '', cidr: null },
        ],
        eth0: [
          {
            address: '192.168.1.23',
            netmask: '255.255.255.0',
            family: 'IPv4',
            internal: false,
            mac: '',
            cidr: null,
          },
          {
            address: 'fe80::1',
            netmask: 'ffff:ffff:ffff:ffff::',
            family: 'IPv6',
            internal: false,
            mac: '',
            cidr: null,
            scopeid: 1,
          },
        ],
        wlan0: [
          {
            address: '169.254.3.4',
            netmask: '255.255.0.0',
            family: 'IPv4',
            internal: false,
            mac: '',
            cidr: null,
          },
        ],
      },
      'frontdesk-pc',
    );
    expect(suggestion).toEqual({
      hostname: 'frontdesk-pc',
      networks: [{ interfaceName: 'eth0', address: '192.168.1.23', subnet: '192.168.1.0/24' }],
    });
  });
});

describe('the IPC contract', () => {
  it('validates every channel, and refuses undeclared ones', () => {
    for (const channel of CHANNELS)
      expect(() => validatePayload(channel, { unexpected: 1 })).toThrow(PayloadError);
    expect(() => validatePayload('shell:open' as never, null)).toThrow(/no such channel/);
    expect(validatePayload('queue:retry', { id: '1732900000000-a1b2' })).toEqual({
      id: '1732900000000-a1b2',
    });
    expect(validatePayload('queue:delete-many', { ids: ['1732900000000-a1b2'] })).toEqual({
      ids: ['1732900000000-a1b2'],
    });
    expect(() => validatePayload('queue:delete-many', { ids: ['../../etc/passwd'] })).toThrow(PayloadError);
    expect(() => validatePayload('queue:retry-many', { ids: Array(1001).fill('a') })).toThrow(/at most 1000/);
    expect(validatePayload('device:allow', { ip: 'fd00::5' })).toEqual({ ip: 'fd00::5' });
    expect(validatePayload('mail:send-test', { to: null })).toEqual({ to: null });
    expect(() => validatePayload('secret:store', { kind: 'password', secret: '', config: {} })).toThrow(
      /not be empty/,
    );
    expect(() => validatePayload('config:apply', { config: { a: 'x'.repeat(300_000) } })).toThrow(
      /too large/,
    );
    expect(() => validatePayload('config:apply', { config: Object.create({ polluted: true }) })).toThrow(
      /must be an object/,
    );
  });
});

describe('serve --admin arguments', () => {
  it('refuses an admin address that is not an IP address and port (exit 64)', async () => {
    const stderr = new PassThrough();
    let said = '';
    stderr.on('data', (chunk: Buffer) => (said += chunk.toString()));
    const code = await serveAdminCommand(
      { admin: 'relay.contoso.com:8025' },
      { stdout: new PassThrough(), stderr, stdin: new PassThrough(), env: {} },
    );
    expect(code).toBe(64);
    expect(said).toContain('--admin takes HOST:PORT');
  });
});
