import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyPreset,
  defaultConfig,
  defaultConfigPath,
  defaultDataDir,
  formatProblems,
  loadConfigFile,
  parseConfig,
  PRESETS,
  saveConfigFile,
} from '../../electron/config/index.ts';
import type { ConfigProblem } from '../../electron/config/index.ts';
import { hashLanPassword } from '../../electron/relay/lan-auth.ts';
import { certsDir, testCa } from '../fixtures/tls.ts';

/** The seed scenario: a help desk app and a fax relaying through John's Microsoft 365 mailbox. */
const seedFile = {
  allowedClients: ['10.100.102.2', '10.100.102.3'],
  upstream: { preset: 'microsoft365', user: 'john@contoso.com' },
};

function paths(problems: ConfigProblem[]): string[] {
  return problems.map((problem) => problem.path);
}

function messageAt(problems: ConfigProblem[], path: string): string {
  const problem = problems.find((candidate) => candidate.path === path);
  expect(problem, `a problem at ${path}; got ${JSON.stringify(problems)}`).toBeDefined();
  return problem!.message;
}

describe('defaults', () => {
  it('relays only for this computer until devices are added', () => {
    expect(defaultConfig().allowedClients).toEqual(['127.0.0.1', '::1']);
    const { config } = parseConfig({ upstream: { preset: 'microsoft365', user: 'john@contoso.com' } });
    expect(config.allowedClients).toEqual(['127.0.0.1', '::1']);
  });

  it('accepts the seed scenario without a problem', () => {
    const { config, problems } = parseConfig(seedFile);
    expect(problems).toEqual([]);
    expect(config.allowedClients).toEqual(['10.100.102.2', '10.100.102.3']);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 25, tls: 'none' });
    expect(config.limits.maxMessageBytes).toBe(35 * 1024 * 1024);
    expect(config.queue).toEqual({ retryForHours: 48, minRetrySeconds: 60, maxRetrySeconds: 1800 });
  });

  it('asks for the smart host when neither the file nor a preset names one', () => {
    const { problems } = parseConfig({ upstream: { user: 'john@contoso.com' } });
    expect(messageAt(problems, 'upstream.host')).toMatch(/must be set/);
  });
});

describe('presets', () => {
  it('fills Microsoft 365 host, port, security and mailbox limits', () => {
    const { upstream } = parseConfig(seedFile).config;
    expect(upstream).toMatchObject({
      host: 'smtp.office365.com',
      port: 587,
      security: 'starttls',
      auth: 'password',
      messagesPerMinute: 30,
      maxConnections: 3,
      maxMessageBytes: 36700160,
    });
  });

  it('lets fields in the file override the preset, and keeps the preset for the rest', () => {
    const { config, problems } = parseConfig({
      upstream: { preset: 'microsoft365', user: 'john@contoso.com', port: 25, messagesPerMinute: 10 },
    });
    expect(problems).toEqual([]);
    expect(config.upstream).toMatchObject({ host: 'smtp.office365.com', port: 25, messagesPerMinute: 10 });
  });

  it("fills Google's 25 MB limit", () => {
    const { upstream } = parseConfig({ upstream: { preset: 'google', user: 'scanner@example.org' } }).config;
    expect(upstream).toMatchObject({ host: 'smtp.gmail.com', port: 587, maxMessageBytes: 25 * 1024 * 1024 });
  });

  it('leaves the Direct Send host to the admin and does not sign in', () => {
    const { config, problems } = parseConfig({ upstream: { preset: 'microsoft365-direct-send' } });
    expect(config.upstream).toMatchObject({ port: 25, security: 'starttls', auth: 'none', host: '' });
    expect(messageAt(problems, 'upstream.host')).toContain('mail.protection.outlook.com');

    const wrongHost = parseConfig({
      upstream: { preset: 'microsoft365-direct-send', host: 'smtp.office365.com' },
    }).problems;
    expect(paths(wrongHost)).toEqual(['upstream.host']);

    const tenantMx = parseConfig({
      upstream: { preset: 'microsoft365-direct-send', host: 'contoso-com.mail.protection.outlook.com' },
    });
    expect(tenantMx.problems).toEqual([]);
  });

  it('explains the basic authentication retirement in the Microsoft 365 notes', () => {
    expect(PRESETS.microsoft365.notes).toMatch(/December 2026/);
    expect(PRESETS.microsoft365.notes).toMatch(/OAuth 2\.0/);
  });

  it('switches an upstream to a preset, keeping what the preset does not set', () => {
    const custom = { ...defaultConfig().upstream, host: 'mail.example.com', user: 'john@contoso.com' };
    const switched = applyPreset(custom, 'microsoft365');
    expect(switched).toMatchObject({
      preset: 'microsoft365',
      host: 'smtp.office365.com',
      user: 'john@contoso.com',
    });
  });
});

describe('validation', () => {
  it('lists every problem in a bad file by its field path', () => {
    const { config, problems } = parseConfig({
      listen: { port: 70000, tls: 'ssl' },
      allowedClients: ['10.100.102.2', 'fax.local', '10.0.0.0/33'],
      upstream: { preset: 'microsoft365', port: 0, security: 'STARTTLS', user: 'john@contoso.com' },
      limits: { maxRecipients: 0, maxMessageBytes: 200 * 1024 * 1024 },
      queue: { retryForHours: 1000, minRetrySeconds: 3600, maxRetrySeconds: 600 },
      sender: { mode: 'replace', byClient: { '10.0.0.x': 'fax@contoso.com', '10.100.102.3': 'FaxService' } },
      lanAuth: { mode: 'check', users: [] },
      lanTls: { certFile: testCa.file, allowLegacyTls: 'yes' },
    });
    expect(paths(problems).sort()).toEqual(
      [
        'listen.port',
        'listen.tls',
        'allowedClients[1]',
        'allowedClients[2]',
        'upstream.port',
        'upstream.security',
        'limits.maxRecipients',
        'limits.maxMessageBytes',
        'queue.retryForHours',
        'queue.minRetrySeconds',
        'sender.mode',
        'sender.byClient["10.0.0.x"]',
        'sender.byClient["10.100.102.3"]',
        'lanAuth.users',
        'lanTls.keyFile',
        'lanTls.allowLegacyTls',
      ].sort(),
    );
    expect(messageAt(problems, 'upstream.port')).toBe('must be an integer from 1 to 65535');
    expect(messageAt(problems, 'upstream.security')).toContain("did you mean 'starttls'");
    // Refused values fall back, so the UI still has a whole config to show.
    expect(config.listen.port).toBe(25);
    expect(config.upstream.port).toBe(587);
    expect(config.allowedClients).toEqual(['10.100.102.2']);
    expect(config.sender.byClient).toEqual({});
    expect(config.lanTls).toEqual({ certFile: null, keyFile: null, allowLegacyTls: false });
  });

  it('names unknown keys and suggests the one probably meant', () => {
    const { problems } = parseConfig({
      ...seedFile,
      allowedClient: ['10.100.102.4'],
      maxRecipients: 100,
      upstream: { ...seedFile.upstream, max_connections: 2 },
    });
    expect(messageAt(problems, 'allowedClient')).toBe('unknown setting; did you mean allowedClients?');
    expect(messageAt(problems, 'maxRecipients')).toContain('did you mean limits.maxRecipients?');
    expect(messageAt(problems, 'upstream.max_connections')).toContain(
      'did you mean upstream.maxConnections?',
    );
  });

  it('refuses an allow-list entry that would make an open relay', () => {
    const { config, problems } = parseConfig({
      ...seedFile,
      allowedClients: ['10.100.102.2', '0.0.0.0/0', '::/0', '10.0.0.0/0'],
    });
    expect(paths(problems)).toEqual(['allowedClients[1]', 'allowedClients[2]', 'allowedClients[3]']);
    expect(messageAt(problems, 'allowedClients[1]')).toMatch(/open relay/);
    expect(config.allowedClients).toEqual(['10.100.102.2']);
  });

  it('refuses an IPv4-mapped range that matches every IPv4 address (::ffff:0:0/96), flag or not', () => {
    for (const allowWideClientRanges of [false, true]) {
      const { config, problems } = parseConfig({
        ...seedFile,
        allowWideClientRanges,
        allowedClients: ['10.100.102.2', '::ffff:0:0/96', '0:0:0:0:0:ffff:0:0/96', '::/64'],
      });
      expect(paths(problems)).toEqual(['allowedClients[1]', 'allowedClients[2]', 'allowedClients[3]']);
      expect(messageAt(problems, 'allowedClients[1]')).toMatch(/covers every IPv4 address.*open relay/);
      expect(messageAt(problems, 'allowedClients[3]')).toMatch(/covers every IPv4 address/);
      expect(config.allowedClients).toEqual(['10.100.102.2']);
    }
  });

  it('refuses a range wider than one IPv4 /8 or IPv6 /32, saying what it covers, unless allowed', () => {
    const wide = ['10.0.0.0/7', '0.0.0.0/1', '2001:db8::/31', 'fe80::/10', '::ffff:1000:0/100'];
    const { config, problems } = parseConfig({ ...seedFile, allowedClients: ['10.100.102.2', ...wide] });
    expect(paths(problems)).toEqual(wide.map((_, index) => `allowedClients[${index + 1}]`));
    expect(messageAt(problems, 'allowedClients[1]')).toContain('covers 33,554,432 addresses (2 /8 networks)');
    expect(messageAt(problems, 'allowedClients[2]')).toContain('covers 2,147,483,648 addresses');
    expect(messageAt(problems, 'allowedClients[3]')).toContain('covers 2^97 addresses (2 /32 networks)');
    expect(messageAt(problems, 'allowedClients[5]')).toContain(
      'is the IPv4 range 16.0.0.0/4, which covers 268,435,456 addresses',
    );
    expect(messageAt(problems, 'allowedClients[1]')).toContain('"allowWideClientRanges": true');
    expect(config.allowedClients).toEqual(['10.100.102.2']);

    const allowed = parseConfig({ ...seedFile, allowWideClientRanges: true, allowedClients: wide });
    expect(allowed.problems).toEqual([]);
    expect(allowed.config.allowedClients).toEqual(wide);
    expect(allowed.config.allowWideClientRanges).toBe(true);

    const oneEach = ['10.0.0.0/8', '2001:db8::/32', '::ffff:a00:0/104'];
    expect(parseConfig({ ...seedFile, allowedClients: oneEach }).problems).toEqual([]);
  });

  it('accepts IPv4 and IPv6 addresses and CIDR ranges, and refuses malformed ones', () => {
    const valid = [
      '10.100.102.2',
      '10.100.102.0/24',
      '192.168.1.0/32',
      '::1',
      '2001:db8::/32',
      'fe80::/64',
      '2001:db8::1/128',
    ];
    expect(parseConfig({ ...seedFile, allowedClients: valid })).toMatchObject({
      problems: [],
      config: { allowedClients: valid },
    });

    const invalid = [
      '10.0.0.0/33',
      '2001:db8::/129',
      '10.0.0.0/-1',
      '10.0.0.0/',
      '10.0.0.256',
      'fax.local',
      '10.100.102.*',
      '2001:db8::/x',
    ];
    const { problems, config } = parseConfig({ ...seedFile, allowedClients: invalid });
    expect(paths(problems)).toEqual(invalid.map((_, index) => `allowedClients[${index}]`));
    expect(messageAt(problems, 'allowedClients[1]')).toContain('0 to 128');
    expect(messageAt(problems, 'allowedClients[6]')).toContain('10.100.102.0/24');
    expect(config.allowedClients).toEqual([]);
  });

  it('refuses secrets in the file without repeating them', () => {
    const { problems } = parseConfig({
      ...seedFile,
      password: 'Hunter2!top',
      upstream: {
        ...seedFile.upstream,
        password: 'Hunter2!up',
        oauth2: { tenant: 'contoso.com', clientId: 'app', clientSecret: 'S3cr3t~x' },
      },
      lanAuth: { users: [{ user: 'scanner', password: 'Hunter2!lan' }] },
    });
    for (const path of ['password', 'upstream.password', 'upstream.oauth2.clientSecret']) {
      const message = messageAt(problems, path);
      expect(message).toContain('relaydesk password set');
      expect(message).toContain('RELAYDESK_UPSTREAM_PASSWORD');
      expect(message).toContain('RELAYDESK_CLIENT_SECRET');
    }
    expect(messageAt(problems, 'lanAuth.users[0].password')).toContain('relaydesk lan-user add');
    expect(JSON.stringify(problems)).not.toMatch(/Hunter2|S3cr3t/);
  });

  it('refuses a passwordHash that lan-user add did not write (a plain password pasted in), without echoing it', async () => {
    const hash = await hashLanPassword('Hunter2!lan');
    const { problems } = parseConfig({
      ...seedFile,
      lanAuth: {
        mode: 'check',
        users: [
          { user: 'scanner', passwordHash: 'Hunter2!lan' },
          { user: 'laptop', passwordHash: hash },
          { user: 'mfp', passwordHash: hash.replace('scrypt$32768', 'scrypt$1000') },
        ],
      },
    });
    expect(paths(problems)).toEqual(['lanAuth.users[0].passwordHash', 'lanAuth.users[2].passwordHash']);
    // The user names lan-user add accepts (what a device can send in AUTH), in the file too.
    const named = parseConfig({
      ...seedFile,
      lanAuth: { mode: 'check', users: [{ user: 'front desk', passwordHash: hash }] },
    });
    expect(messageAt(named.problems, 'lanAuth.users[0].user')).toMatch(
      /printable ASCII characters, without spaces/,
    );
    expect(messageAt(problems, 'lanAuth.users[0].passwordHash')).toContain('relaydesk lan-user add');
    expect(JSON.stringify(problems)).not.toContain('Hunter2');
    // In 'ignore' mode the users are not used: a leftover entry does not stop the relay.
    const ignored = parseConfig({
      ...seedFile,
      lanAuth: { mode: 'ignore', users: [{ user: 'scanner', passwordHash: 'Hunter2!lan' }] },
    });
    expect(ignored.problems).toEqual([]);
  });

  it('never sends a password over an unencrypted upstream, except to a loopback host', () => {
    const remote = parseConfig({ ...seedFile, upstream: { ...seedFile.upstream, security: 'none' } });
    expect(paths(remote.problems)).toEqual(['upstream.security']);
    expect(messageAt(remote.problems, 'upstream.security')).toMatch(/never sent unencrypted/);

    const loopback = parseConfig({
      upstream: { host: '127.0.0.1', port: 2525, security: 'none', user: 'john@contoso.com' },
    });
    expect(loopback.problems).toEqual([]);

    const anonymous = parseConfig({
      upstream: { host: 'mail.example.com', port: 25, security: 'none', auth: 'none' },
    });
    expect(anonymous.problems).toEqual([]);
  });

  it('needs the user for password and OAuth 2.0 sign-in', () => {
    const { problems } = parseConfig({ upstream: { preset: 'microsoft365' } });
    expect(paths(problems)).toEqual(['upstream.user']);
  });

  it('delegated sign-in: needs no user, takes organizations and a national cloud authority', () => {
    const delegated = parseConfig({
      upstream: {
        preset: 'microsoft365',
        auth: 'oauth2',
        oauth2: {
          tenant: 'organizations',
          clientId: 'app-id',
          grant: 'delegated',
          authorityUrl: 'https://login.microsoftonline.us/',
        },
      },
    });
    expect(delegated.problems).toEqual([]);
    expect(delegated.config.upstream.oauth2).toEqual({
      tenant: 'organizations',
      clientId: 'app-id',
      grant: 'delegated',
      authorityUrl: 'https://login.microsoftonline.us',
      tokenUrl: 'https://login.microsoftonline.us/organizations/oauth2/v2.0/token',
    });
  });

  it('explains a wrong grant, an authority with a path, and organizations for an app-only sign-in', () => {
    const oauth = { preset: 'microsoft365', auth: 'oauth2', user: 'john@contoso.com' };
    const wrong = parseConfig({
      upstream: {
        ...oauth,
        oauth2: {
          tenant: 'organizations',
          clientId: 'c',
          grant: 'authorization_code',
          authorityUrl: 'https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token',
        },
      },
    });
    const byPath = Object.fromEntries(wrong.problems.map((problem) => [problem.path, problem.message]));
    expect(Object.keys(byPath).sort()).toEqual([
      'upstream.oauth2.authorityUrl',
      'upstream.oauth2.grant',
      'upstream.oauth2.tenant',
    ]);
    expect(byPath['upstream.oauth2.grant']).toContain("'client_credentials', 'delegated'");
    expect(byPath['upstream.oauth2.authorityUrl']).toContain('sign-in host only');
    expect(byPath['upstream.oauth2.tenant']).toContain("grant 'delegated'");

    const plain = parseConfig({
      upstream: {
        ...oauth,
        oauth2: { tenant: 't', clientId: 'c', grant: 'delegated', authorityUrl: 'http://login.example.com' },
      },
    });
    expect(paths(plain.problems)).toEqual(['upstream.oauth2.authorityUrl']);
  });

  it('offers the High Volume Email preset', () => {
    const hve = parseConfig({ upstream: { preset: 'microsoft365-hve', user: 'scanner@contoso.com' } });
    expect(hve.problems).toEqual([]);
    expect(hve.config.upstream).toMatchObject({
      host: 'smtp-hve.office365.com',
      port: 587,
      security: 'starttls',
      auth: 'password',
    });
  });

  it('completes OAuth 2.0 settings and keeps the token endpoint on https', () => {
    const oauth = { preset: 'microsoft365', auth: 'oauth2', user: 'john@contoso.com' };
    const ok = parseConfig({
      upstream: { ...oauth, oauth2: { tenant: 'contoso.onmicrosoft.com', clientId: 'app-id' } },
    });
    expect(ok.problems).toEqual([]);
    expect(ok.config.upstream.oauth2).toEqual({
      tenant: 'contoso.onmicrosoft.com',
      clientId: 'app-id',
      grant: 'client_credentials',
      authorityUrl: 'https://login.microsoftonline.com',
      tokenUrl: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
    });

    const emulator = parseConfig({
      upstream: {
        ...oauth,
        oauth2: { tenant: 't', clientId: 'c', tokenUrl: 'http://127.0.0.1:4000/t/token' },
      },
    });
    expect(emulator.problems).toEqual([]);

    const plainHttp = parseConfig({
      upstream: {
        ...oauth,
        oauth2: { tenant: 't', clientId: 'c', tokenUrl: 'http://login.example.com/token' },
      },
    });
    expect(paths(plainHttp.problems)).toEqual(['upstream.oauth2.tokenUrl']);

    expect(paths(parseConfig({ upstream: oauth }).problems)).toEqual(['upstream.oauth2']);
    expect(paths(parseConfig({ upstream: { ...oauth, oauth2: { tenant: 't' } } }).problems)).toEqual([
      'upstream.oauth2.clientId',
    ]);
  });

  it('needs OAuth 2.0 and a mailbox for a Graph upstream', () => {
    const { config, problems } = parseConfig({
      upstream: { type: 'graph', graphUrl: 'http://graph.example.com' },
    });
    expect(paths(problems).sort()).toEqual(['upstream.graphUrl', 'upstream.mailbox', 'upstream.oauth2']);
    expect(config.upstream.auth).toBe('oauth2');

    const complete = parseConfig({
      upstream: { type: 'graph', mailbox: 'john@contoso.com', oauth2: { tenant: 't', clientId: 'c' } },
    });
    expect(complete.problems).toEqual([]);
  });

  it('checks that caFile and the LAN certificate files exist and hold PEM', () => {
    const present = parseConfig({ ...seedFile, upstream: { ...seedFile.upstream, caFile: testCa.file } });
    expect(present.problems).toEqual([]);
    expect(present.config.upstream.caFile).toBe(testCa.file);

    const missing = path.join(certsDir, 'no-such-ca.pem');
    const absent = parseConfig({ ...seedFile, upstream: { ...seedFile.upstream, caFile: missing } });
    expect(messageAt(absent.problems, 'upstream.caFile')).toContain('does not exist');
    expect(absent.config.upstream.caFile).toBeNull();

    const swapped = parseConfig({
      ...seedFile,
      lanTls: {
        certFile: path.join(certsDir, 'server-key.pem'),
        keyFile: path.join(certsDir, 'server-key.pem'),
      },
    });
    expect(paths(swapped.problems)).toEqual(['lanTls.certFile']);

    const pair = parseConfig({
      ...seedFile,
      lanTls: { certFile: path.join(certsDir, 'server.pem'), keyFile: path.join(certsDir, 'server-key.pem') },
    });
    expect(pair.problems).toEqual([]);
  });

  it('accepts certificate paths with spaces, as in Application Support or Program Files', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk config '));
    try {
      const caFile = path.join(dir, 'Application Support', 'ca.pem');
      await mkdir(path.dirname(caFile));
      await writeFile(caFile, testCa.pem);
      const { config, problems } = parseConfig({ ...seedFile, upstream: { ...seedFile.upstream, caFile } });
      expect(problems).toEqual([]);
      expect(config.upstream.caFile).toBe(caFile);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses two listeners on the same host and port', () => {
    const { config, problems } = parseConfig({
      ...seedFile,
      extraListeners: [
        { host: '0.0.0.0', port: 2525, tls: 'none' },
        { host: '0.0.0.0', port: 25, tls: 'starttls' },
        { host: '0.0.0.0', port: 465, tls: 'tls' },
      ],
    });
    expect(paths(problems)).toEqual(['extraListeners[2].tls', 'extraListeners[1]']);
    expect(config.extraListeners).toEqual([{ host: '0.0.0.0', port: 2525, tls: 'none' }]);
  });

  it('refuses a file that is not a JSON object', () => {
    expect(parseConfig(['10.100.102.2']).problems).toEqual([
      { path: '(file)', message: 'must hold a JSON object ({ ... }) at the top level' },
    ]);
  });

  it('formats problems one per line', () => {
    expect(
      formatProblems([
        { path: 'upstream.port', message: 'must be an integer from 1 to 65535' },
        { path: 'allowedClients[0]', message: 'x' },
      ]),
    ).toBe('  upstream.port: must be an integer from 1 to 65535\n  allowedClients[0]: x');
  });
});

describe('config file', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'relaydesk-config-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a missing file as the defaults, without a problem', async () => {
    const loaded = await loadConfigFile(path.join(dir, 'config.json'));
    expect(loaded).toEqual({ config: defaultConfig(), problems: [], exists: false });
  });

  it('saves atomically and loads back the same config', async () => {
    const file = path.join(dir, 'nested', 'RelayDesk', 'config.json');
    const { config } = parseConfig(seedFile);
    await saveConfigFile(file, config);

    const text = await readFile(file, 'utf8');
    expect(text).toBe(`${JSON.stringify(config, null, 2)}\n`);
    expect(text).toContain('\n  "listen": {\n    "host": "0.0.0.0",');
    if (process.platform !== 'win32') expect((await stat(file)).mode & 0o777).toBe(0o600);

    const changed = { ...config, allowedClients: [...config.allowedClients, '10.100.102.0/24'] };
    await saveConfigFile(file, changed);
    expect(await readdir(path.dirname(file))).toEqual(['config.json']);
    expect(await loadConfigFile(file)).toEqual({ config: changed, problems: [], exists: true });
  });

  it('reports the line and column of a JSON syntax error', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{\n  "allowedClients": ["10.100.102.2"]\n  "upstream": {}\n}\n');
    const loaded = await loadConfigFile(file);
    expect(loaded.exists).toBe(true);
    expect(loaded.config).toEqual(defaultConfig());
    expect(loaded.problems).toEqual([
      { path: '(file)', message: "not valid JSON at line 3, column 3: expected ',' or '}' after the value" },
    ]);
  });

  it('does not quote the file in a JSON syntax error', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, "{ upstream: { password: 'Hunter2!x' } }");
    const { problems } = await loadConfigFile(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/^not valid JSON at line 1, column 3: /);
    expect(problems[0]!.message).not.toContain('Hunter2');
  });

  it('reads a file saved with a byte order mark, as Notepad does', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, `\uFEFF${JSON.stringify(seedFile)}`);
    const loaded = await loadConfigFile(file);
    expect(loaded.problems).toEqual([]);
    expect(loaded.config.upstream.host).toBe('smtp.office365.com');
  });

  it('reports validation problems of a well-formed file', async () => {
    const file = path.join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ ...seedFile, allowedClients: ['0.0.0.0/0'] }));
    const loaded = await loadConfigFile(file);
    expect(paths(loaded.problems)).toEqual(['allowedClients[0]']);
  });
});

describe('paths', () => {
  it('uses each platform convention for the data folder', () => {
    expect(defaultDataDir('win32', { APPDATA: 'C:\\Users\\john\\AppData\\Roaming' }, 'C:\\Users\\john')).toBe(
      'C:\\Users\\john\\AppData\\Roaming\\RelayDesk',
    );
    expect(defaultDataDir('win32', {}, 'C:\\Users\\john')).toBe(
      'C:\\Users\\john\\AppData\\Roaming\\RelayDesk',
    );
    expect(defaultDataDir('darwin', {}, '/Users/john')).toBe(
      '/Users/john/Library/Application Support/RelayDesk',
    );
    expect(defaultDataDir('linux', { XDG_CONFIG_HOME: '/srv/conf' }, '/home/john')).toBe(
      '/srv/conf/RelayDesk',
    );
    expect(defaultDataDir('linux', {}, '/home/john')).toBe('/home/john/.config/RelayDesk');
    expect(defaultDataDir('linux', { XDG_CONFIG_HOME: 'relative' }, '/home/john')).toBe(
      '/home/john/.config/RelayDesk',
    );
  });

  it('puts config.json in the data folder', () => {
    expect(defaultConfigPath('/home/john/.config/RelayDesk', 'linux')).toBe(
      '/home/john/.config/RelayDesk/config.json',
    );
    expect(defaultConfigPath('C:\\ProgramData\\RelayDesk', 'win32')).toBe(
      'C:\\ProgramData\\RelayDesk\\config.json',
    );
  });
});
