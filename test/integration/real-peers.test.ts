/**
 * RelayDesk between real mail software: a real Postfix submission smart host (STARTTLS, Dovecot
 * SASL, authentication required) upstream, and real clients as the devices (Python smtplib, curl,
 * msmtp, s-nail, busybox sendmail's bytes, Postfix itself). Each message is compared with what the
 * device sent, apart from what RelayDesk documents that it changes (a Received header; Date and
 * Message-ID when missing; no Bcc; `\r\r\n` read as one line end).
 *
 * Needs postfix, dovecot, python3, curl, msmtp and s-nail (.ci/run installs them) and root (Postfix's
 * master); without them the file skips with the reason.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  peersMissing,
  SMART_HOST_CA,
  startPostfixClient,
  startSmartHost,
  type DeliveredMessage,
  type SmartHost,
} from '../fixtures/postfix.ts';
import {
  createTeardown,
  eventually,
  freePort,
  queueFiles,
  runCli,
  sendMail,
  startRelay,
  tempDir,
  testConfig,
  UPSTREAM_PASSWORD,
  writeConfigFile,
} from './harness.ts';

const MAILBOX = 'john@contoso.com';
const WRONG_PASSWORD = 'Tr0ub4dor&3-not-it';
const skipReason = peersMissing(['postfix', 'dovecot', 'python3', 'curl', 'msmtp', 's-nail']);
if (skipReason) console.warn(`real-peers.test.ts skipped: ${skipReason}`);

// CI installs every peer (.ci/run): there a missing one is a failure, not a skip.
it.runIf(skipReason !== null && Boolean(process.env.CI))('has its real peers (CI)', () => {
  throw new Error(`real-peers.test.ts cannot run: ${skipReason}`);
});

const teardown = createTeardown();
afterEach(teardown.run);

/** Runs a client program to its end (bounded), with `input` on its stdin. */
function runClient(
  command: string,
  args: string[],
  input: Buffer | string = '',
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not finish within 30 s:\n${stdout}\n${stderr}`));
    }, 30_000);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** A device's message: CRLF lines, with a dot line, a `From ` line and trailing white space. */
function deviceMessage(subject: string, to = 'alice@example.com'): { header: string[]; body: string[] } {
  const slug = subject.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return {
    header: [
      'From: Scanner 2F <scanner@contoso.com>',
      `To: ${to}`,
      `Subject: ${subject}`,
      'Date: Thu, 3 Dec 2026 12:00:00 +0000',
      `Message-ID: <${slug}@scanner.contoso.local>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
    ],
    body: [
      'Scan of 3 pages attached.',
      '.a line that starts with a dot',
      '',
      'From the front desk, with a trailing space ',
      '..two dots',
      'Last line.',
    ],
  };
}

const crlf = (lines: string[]) => lines.map((line) => `${line}\r\n`).join('');
const asSent = (message: { header: string[]; body: string[] }) =>
  Buffer.from(`${crlf(message.header)}\r\n${crlf(message.body)}`, 'latin1');

/** The header lines a copy arrived with, apart from the Received lines of each hop. */
function headersOf(delivered: DeliveredMessage): string[] {
  return delivered.headers.filter((line) => !/^received:/i.test(line));
}

const bodyLines = (delivered: DeliveredMessage) =>
  delivered.body.toString('latin1').replace(/\n$/, '').split('\n');

async function arrived(smartHost: SmartHost, subject: string, count = 1): Promise<DeliveredMessage[]> {
  const matching = async () =>
    (await smartHost.messages()).filter((m) => m.headers.includes(`Subject: ${subject}`));
  await eventually(async () => (await matching()).length >= count, 30_000, 100);
  return matching();
}

/** RelayDesk `serve` in front of the smart host. */
async function relayTo(
  smartHost: SmartHost,
  extra: Record<string, unknown> = {},
  password = UPSTREAM_PASSWORD,
) {
  const port = await freePort();
  const relay = await startRelay({
    config: testConfig(port, smartHost.port, SMART_HOST_CA, { upstream: { user: MAILBOX }, ...extra }),
    env: { RELAYDESK_UPSTREAM_PASSWORD: password },
  });
  return teardown.relay(relay);
}

describe.skipIf(skipReason !== null)('RelayDesk with a Postfix + Dovecot smart host', () => {
  let smartHost: SmartHost;
  beforeAll(async () => {
    smartHost = await startSmartHost({ port: await freePort(), users: { [MAILBOX]: UPSTREAM_PASSWORD } });
  }, 60_000);
  afterAll(async () => smartHost?.close());

  async function configFile(password?: string): Promise<{ file: string; env: NodeJS.ProcessEnv }> {
    const { file } = await writeConfigFile(
      teardown,
      testConfig(await freePort(), smartHost.port, SMART_HOST_CA, { upstream: { user: MAILBOX } }),
    );
    return { file, env: { RELAYDESK_UPSTREAM_PASSWORD: password ?? UPSTREAM_PASSWORD } };
  }

  it('is a smart host that takes mail only from a client that signed in, and AUTH only over TLS', async () => {
    const script = [
      'import smtplib, ssl, sys',
      `s = smtplib.SMTP("127.0.0.1", ${smartHost.port}, timeout=20)`,
      's.ehlo()',
      'print("auth before tls:", s.has_extn("auth"))',
      'try:',
      '    s.sendmail("scanner@contoso.com", ["alice@example.com"], b"Subject: anonymous\\r\\n\\r\\nx\\r\\n")',
      'except smtplib.SMTPRecipientsRefused as e:',
      '    print("refused:", list(e.recipients.values())[0][0])',
      `s.starttls(context=ssl.create_default_context(cafile=${JSON.stringify(SMART_HOST_CA)}))`,
      's.ehlo()',
      'print("auth after tls:", s.has_extn("auth"))',
    ].join('\n');
    const result = await runClient('python3', ['-c', script]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('auth before tls: False\nrefused: 554\nauth after tls: True\n');
  });

  it('`check` passes every step against it, and `send-test` arrives', async () => {
    const { file, env } = await configFile();
    const check = await runCli(['check', '--config', file], env);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    for (const step of ['connect', 'greeting', 'ehlo', 'starttls', 'auth']) {
      expect(check.stdout).toMatch(new RegExp(`ok +${step} +\\d+ ms`));
    }
    expect(check.stdout).not.toContain(UPSTREAM_PASSWORD);

    const test = await runCli(['send-test', '--to', 'alice@example.com', '--config', file], env);
    expect(test.code, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/Upstream replied: 250 2\.0\.0 Ok: queued as/);
    const delivered = (await smartHost.waitForMessages(1)).filter((m) =>
      m.headers.some((line) => /^Subject: RelayDesk test message from /.test(line)),
    );
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.recipient).toBe('alice@example.com');
  });

  it('`check` diagnoses a wrong password; the relay holds mail until the password is right', async () => {
    const { file } = await configFile();
    const check = await runCli(['check', '--config', file], { RELAYDESK_UPSTREAM_PASSWORD: WRONG_PASSWORD });
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/FAIL auth/);
    expect(check.stdout).toContain('535 5.7.8');
    expect(check.stdout).toContain('How to fix:');

    const relay = await relayTo(
      smartHost,
      { queue: { minRetrySeconds: 3600, maxRetrySeconds: 3600 } },
      WRONG_PASSWORD,
    );
    const message = deviceMessage('Held while the password is wrong');
    const sent = await sendMail(relay.port, {
      from: 'scanner@contoso.com',
      to: ['alice@example.com'],
      data: asSent(message),
    });
    expect(sent.final).toMatch(/^250 /);
    const held = await relay.waitForLog((r) => r.event === 'held');
    expect(String(held.reason)).toContain('535 5.7.8');
    const status = await eventually(async () => {
      const report = JSON.parse((await relay.cli(['status', '--json'])).stdout);
      return report.queue.held === 1 && report.upstream.state === 'held' ? report : null;
    });
    expect(status.upstream.lastError.reply).toContain('535 5.7.8');
    expect(status.upstream.lastError.diagnosis).toMatchObject({
      id: 'auth-rejected',
      category: 'credentials',
    });
    const text = (await relay.cli(['status'])).stdout;
    expect(text).toContain('HELD');
    expect(text).toContain('relaydesk password set');
    for (const output of [JSON.stringify(relay.logs), relay.stderr(), text, check.stdout]) {
      expect(output).not.toContain(WRONG_PASSWORD);
    }
    expect(await smartHost.log()).toMatch(/authentication failed/);
    expect(relay.logs.filter((r) => r.event === 'failed')).toEqual([]);

    // The admin fixes the password: the same message, kept, goes out once.
    await relay.stop();
    const fixed = teardown.relay(
      await startRelay({
        config: JSON.parse(await readFile(relay.configPath, 'utf8')),
        dataDir: relay.dataDir,
        env: { RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD },
      }),
    );
    await fixed.cli(['queue', 'flush']);
    const [copy] = await arrived(smartHost, 'Held while the password is wrong');
    expect(bodyLines(copy!)).toEqual(message.body);
    await eventually(async () => (await queueFiles(fixed.dataDir)).length === 0);
    expect(await arrived(smartHost, 'Held while the password is wrong')).toHaveLength(1);
  });

  it('delivers a 10 MB attachment byte for byte', async () => {
    const relay = await relayTo(smartHost);
    const attachment = randomBytes(10 * 1024 * 1024);
    const base64Lines = attachment.toString('base64').match(/.{1,76}/g)!;
    const message = deviceMessage('Ten megabyte scan');
    message.header.splice(-1, 1, 'Content-Type: multipart/mixed; boundary="scan-boundary"');
    message.body = [
      '--scan-boundary',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'The scan is attached.',
      '--scan-boundary',
      'Content-Type: application/pdf; name="scan.pdf"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="scan.pdf"',
      '',
      ...base64Lines,
      '--scan-boundary--',
    ];
    const sent = await sendMail(relay.port, {
      from: 'scanner@contoso.com',
      to: ['alice@example.com'],
      data: asSent(message),
    });
    expect(sent.final).toMatch(/^250 /);
    const [copy] = await arrived(smartHost, 'Ten megabyte scan');
    expect(headersOf(copy!)).toEqual(message.header);
    const lines = bodyLines(copy!);
    expect(lines.length).toBe(message.body.length);
    expect(lines).toEqual(message.body);
    const start = lines.indexOf('Content-Disposition: attachment; filename="scan.pdf"') + 2;
    const decoded = Buffer.from(lines.slice(start, start + base64Lines.length).join(''), 'base64');
    expect(createHash('sha256').update(decoded).digest('hex')).toBe(
      createHash('sha256').update(attachment).digest('hex'),
    );
  });

  it('keeps mail while the smart host is down and delivers it once when it is back', async () => {
    const own = await startSmartHost({ port: await freePort(), users: { [MAILBOX]: UPSTREAM_PASSWORD } });
    teardown.add(() => own.close());
    const relay = await relayTo(own, { queue: { minRetrySeconds: 1, maxRetrySeconds: 2 } });
    await own.stop();
    const message = deviceMessage('Sent while the smart host was down');
    const sent = await sendMail(relay.port, {
      from: 'scanner@contoso.com',
      to: ['alice@example.com', 'bob@example.com'],
      data: asSent(message),
    });
    expect(sent.final).toMatch(/^250 /);
    const deferred = await relay.waitForLog((r) => r.event === 'deferred');
    expect(String(JSON.stringify(deferred))).toMatch(/ECONNREFUSED|refused/i);
    expect(await queueFiles(relay.dataDir)).toHaveLength(1);

    await own.start();
    const copies = await arrived(own, 'Sent while the smart host was down', 2);
    await eventually(async () => (await queueFiles(relay.dataDir)).length === 0);
    // A few more retry periods: nothing comes a second time.
    await new Promise((r) => setTimeout(r, 3000));
    const all = (await own.messages()).filter((m) =>
      m.headers.includes(`Subject: ${message.header[2]!.slice(9)}`),
    );
    expect(all.map((m) => m.recipient).sort()).toEqual(['alice@example.com', 'bob@example.com']);
    expect(copies).toHaveLength(2);
    expect(relay.logs.filter((r) => r.event === 'delivered')).toHaveLength(1);
    expect(bodyLines(all[0]!)).toEqual(message.body);
  });

  it.each([
    { mechanism: 'plain' as const, expected: 'PLAIN' },
    { mechanism: 'login' as const, expected: 'LOGIN' },
  ])(
    'signs in with AUTH $expected when that is what the smart host offers',
    async ({ mechanism, expected }) => {
      const own = await startSmartHost({
        port: await freePort(),
        users: { [MAILBOX]: UPSTREAM_PASSWORD },
        mechanisms: [mechanism],
      });
      teardown.add(() => own.close());
      const relay = await relayTo(own);
      const message = deviceMessage(`Signed in with ${expected}`);
      expect(
        (
          await sendMail(relay.port, {
            from: 'scanner@contoso.com',
            to: ['alice@example.com'],
            data: asSent(message),
          })
        ).final,
      ).toMatch(/^250 /);
      const [copy] = await arrived(own, `Signed in with ${expected}`);
      expect(headersOf(copy!)).toEqual(message.header);
      // ESMTPSA: Postfix took it over TLS (STARTTLS) from a signed-in client.
      expect(copy!.received).toMatch(/with ESMTPSA id /);
      expect(await own.log()).toContain(`sasl_method=${expected}, sasl_username=${MAILBOX}`);
    },
  );
});

describe.skipIf(skipReason !== null)('real device clients through RelayDesk to the smart host', () => {
  let smartHost: SmartHost;
  let relayPort: number;
  beforeAll(async () => {
    smartHost = await startSmartHost({ port: await freePort(), users: { [MAILBOX]: UPSTREAM_PASSWORD } });
  }, 60_000);
  afterAll(async () => smartHost?.close());

  async function relay() {
    const started = await relayTo(smartHost);
    relayPort = started.port;
    return started;
  }

  /** Sent as is: every header and body line arrives as the device wrote it. */
  async function expectIntact(subject: string, message: { header: string[]; body: string[] }) {
    const [copy] = await arrived(smartHost, subject);
    expect(headersOf(copy!)).toEqual(message.header);
    expect(bodyLines(copy!)).toEqual(message.body);
    return copy!;
  }

  /**
   * `command` (a device's mail client) sends a device's message, given on its stdin, through the relay
   * on the port `args` get; it must end well and the message arrive intact.
   */
  async function expectClientSendsIntact(client: string, command: string, args: (port: number) => string[]) {
    await relay();
    const subject = `From ${client}`;
    const message = deviceMessage(subject);
    const result = await runClient(command, args(relayPort), asSent(message));
    expect(result.code, result.stderr).toBe(0);
    await expectIntact(subject, message);
  }

  it('Python smtplib', async () => {
    await expectClientSendsIntact('Python smtplib', 'python3', (port) => [
      '-c',
      [
        'import smtplib, sys',
        'data = sys.stdin.buffer.read()',
        `with smtplib.SMTP("127.0.0.1", ${port}, timeout=20) as s:`,
        '    s.sendmail("scanner@contoso.com", ["alice@example.com"], data)',
      ].join('\n'),
    ]);
  });

  it('curl (smtp://)', async () => {
    await expectClientSendsIntact('curl', 'curl', (port) => [
      '-sS',
      '--max-time',
      '20',
      '--url',
      `smtp://127.0.0.1:${port}`,
      '--mail-from',
      'scanner@contoso.com',
      '--mail-rcpt',
      'alice@example.com',
      '--upload-file',
      '-',
    ]);
  });

  it('msmtp', async () => {
    const config = join(teardown.dir(await tempDir()), 'msmtprc');
    await writeFile(config, '', { mode: 0o600 });
    await expectClientSendsIntact('msmtp', 'msmtp', (port) => [
      '-C',
      config,
      '--host=127.0.0.1',
      `--port=${port}`,
      '--auth=off',
      '--tls=off',
      '--timeout=20',
      '--from=scanner@contoso.com',
      '--',
      'alice@example.com',
    ]);
  });

  it('s-nail, which writes its own header', async () => {
    await relay();
    const home = teardown.dir(await tempDir());
    const body = ['Scan of 3 pages attached.', '.a line that starts with a dot', '', 'Last line.'];
    const result = await runClient(
      's-nail',
      [
        '-:/',
        '-S',
        'v15-compat',
        '-S',
        `mta=smtp://127.0.0.1:${relayPort}`,
        '-S',
        'smtp-auth=none',
        '-S',
        'from=Scanner 2F <scanner@contoso.com>',
        '-s',
        'From s-nail',
        'alice@example.com',
      ],
      body.map((line) => `${line}\n`).join(''),
      { HOME: home },
    );
    expect(result.code, result.stderr).toBe(0);
    const [copy] = await arrived(smartHost, 'From s-nail');
    const headers = headersOf(copy!);
    expect(headers).toContain('From: Scanner 2F <scanner@contoso.com>');
    expect(headers).toContain('To: alice@example.com');
    expect(headers.filter((line) => /^(date|message-id):/i.test(line))).toHaveLength(2);
    expect(bodyLines(copy!)).toEqual(body);
  });

  it('busybox sendmail: lines end in `\\r\\r\\n`, read as one line end as Postfix reads them', async () => {
    await relay();
    const message = deviceMessage('From busybox sendmail');
    // busybox sendmail writes every line it reads with "\r\n" added, a file's CRLF included, and
    // Debian's busybox has no sendmail applet: these are the bytes it sends.
    const bytes = Buffer.from(
      [...message.header, '', ...message.body].map((line) => `${line}\r\r\n`).join(''),
      'latin1',
    );
    const sent = await sendMail(relayPort, {
      from: 'scanner@contoso.com',
      to: ['alice@example.com'],
      data: bytes,
      helo: 'busybox',
    });
    expect(sent.final).toMatch(/^250 /);
    await expectIntact('From busybox sendmail', message);
  });

  it('Postfix as a client relaying an office server through RelayDesk', async () => {
    await relay();
    const office = await startPostfixClient({ port: await freePort(), relayPort });
    teardown.add(() => office.close());
    const message = deviceMessage('From a Postfix client');
    message.header.push('Bcc: audit@example.com');
    const sent = await sendMail(office.port, {
      from: 'fileserver@contoso.com',
      to: ['alice@example.com', 'audit@example.com'],
      data: asSent(message),
    });
    expect(sent.final).toMatch(/^250 /);
    const copies = await arrived(smartHost, 'From a Postfix client', 2);
    expect(copies.map((c) => c.recipient).sort()).toEqual(['alice@example.com', 'audit@example.com']);
    for (const copy of copies) {
      // The office Postfix took the Bcc out itself, as RelayDesk would have.
      expect(headersOf(copy)).toEqual(message.header.filter((line) => !line.startsWith('Bcc:')));
      expect(bodyLines(copy)).toEqual(message.body);
    }
    expect(await office.log()).toMatch(/status=sent/);
  });
});
