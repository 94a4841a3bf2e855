/**
 * IIS's pickup folder, against the real `relaydesk serve` and the Exchange Online emulator: files
 * dropped into `pickup.dir` are each delivered once, with the envelope from their header (or IIS's
 * X-Sender/X-Receiver lines), Bcc gone from what is sent; a file still being written is not taken
 * early; a file that cannot be sent lands in the badmail folder with a `.reason` beside it.
 */
import { open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTeardown,
  eventually,
  sendMail,
  startRelay,
  startRelayWithEmulator,
  tempDir,
} from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

async function setup(pickup: Record<string, unknown> = {}) {
  const mailroot = teardown.dir(await tempDir('relaydesk-mailroot-'));
  const pickupDir = join(mailroot, 'Pickup');
  const { emulator, relay, config } = await startRelayWithEmulator(teardown, {
    config: {
      upstream: { messagesPerMinute: 10_000, maxConnections: 3 },
      pickup: { dir: pickupDir, ...pickup },
    },
  });
  /** The same relay started again on its data folder, after a stop or a crash. */
  const restart = async () => teardown.relay(await startRelay({ config, dataDir: relay.dataDir }));
  return { emulator, relay, restart, pickupDir, badmailDir: join(mailroot, 'Badmail') };
}

/** What the upstream answers while it takes nothing: everything stays queued. */
const BUSY = '451 4.7.500 Server busy. Please try again later.';

function sequenceOf(data: Buffer): string {
  return /X-Seq: (\S+)/.exec(data.toString('latin1'))![1]!;
}

/** Writes the file elsewhere and moves it in, as a careful program does: the test controls when it appears. */
async function drop(pickupDir: string, name: string, content: string): Promise<void> {
  const staging = join(pickupDir, `.${name}.tmp`);
  await writeFile(staging, content);
  await rename(staging, join(pickupDir, name));
}

function headerOf(data: Buffer): string {
  const text = data.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

describe('pickup folder', () => {
  it('delivers each of 1,000 dropped files exactly once, Bcc out of the header but in the envelope', async () => {
    const { emulator, relay, pickupDir } = await setup({ settleSeconds: 1 });
    const count = 1000;
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      // Written in place, the way most programs do it (no staging file).
      await writeFile(
        join(pickupDir, `msg-${i}.eml`),
        `From: john@contoso.com\nTo: alice@contoso.com\nCc: "Bob" <bob@contoso.com>\nBcc: audit@contoso.com\n` +
          `Subject: Invoice ${i}\nX-Seq: ${i}\n\nInvoice number ${i}\n`,
      );
    }
    const messages = await emulator.waitForMessages(count, 60_000);
    const elapsedMs = performance.now() - started;
    const sequence = messages.map((m) => /X-Seq: (\d+)/.exec(m.data.toString('latin1'))![1]);
    expect(new Set(sequence).size).toBe(count);
    for (const message of messages) {
      expect(message.mailFrom).toBe('john@contoso.com');
      expect(message.rcptTo.sort()).toEqual(['alice@contoso.com', 'audit@contoso.com', 'bob@contoso.com']);
      expect(headerOf(message.data)).not.toMatch(/^Bcc:/im);
    }
    // Nothing left behind, nothing sent twice after the queue settles.
    await eventually(async () => (await readdir(pickupDir)).filter((n) => n !== '.claimed').length === 0);
    expect(await readdir(join(pickupDir, '.claimed'))).toEqual([]);
    await relay.cli(['queue', 'list']).then((r) => expect(r.stdout).not.toMatch(/john@contoso\.com/));
    expect(emulator.messages).toHaveLength(count);
    const queued = relay.logs.filter((r) => r.event === 'pickup-queued');
    expect(queued).toHaveLength(count);
    const status = JSON.parse((await relay.cli(['status', '--json'])).stdout) as {
      today: { accepted: number };
    };
    expect(status.today.accepted).toBe(count);
    console.log(`pickup: ${count} files delivered in ${Math.round(elapsedMs)} ms`);
  });

  it('does not take a file while its writer is still writing it', async () => {
    const { emulator, relay, pickupDir } = await setup({ settleSeconds: 3 });
    const handle = await open(join(pickupDir, 'report.eml'), 'w');
    await handle.write(
      'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Report\r\n\r\nfirst half\r\n',
    );
    await handle.sync();
    // A pause shorter than settleSeconds, as a program that fetches the rest from a database.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await handle.write('second half\r\n');
    await handle.close();
    const [message] = await emulator.waitForMessages(1, 20_000);
    expect(message!.data.toString()).toContain('first half\r\nsecond half');
    await relay.waitForLog((r) => r.event === 'pickup-queued' && r.file === 'report.eml');
    expect(relay.logs.filter((r) => r.event === 'pickup-queued')).toHaveLength(1);
  });

  it('moves a file it cannot send to Badmail with a reason, and goes on with the next', async () => {
    const { emulator, relay, pickupDir, badmailDir } = await setup({ settleSeconds: 1 });
    await drop(pickupDir, 'no-recipient.eml', 'From: john@contoso.com\r\nSubject: Nobody\r\n\r\ntext\r\n');
    await drop(pickupDir, 'photo.jpg', '\xff\xd8\xff\xe0 not a message at all');
    await drop(pickupDir, 'good.eml', 'From: john@contoso.com\r\nTo: alice@contoso.com\r\n\r\nfine\r\n');

    const bad = await relay.waitForLog((r) => r.event === 'pickup-badmail' && r.file === 'no-recipient.eml');
    expect(bad.reason).toMatch(/no recipients/);
    await relay.waitForLog((r) => r.event === 'pickup-badmail' && r.file === 'photo.jpg');
    const reason = await readFile(join(badmailDir, 'no-recipient.eml.reason'), 'utf8');
    expect(reason).toMatch(/Problem: no recipients/);
    expect(reason).toMatch(/Fix: add a line such as "To: alice@contoso\.com"/);
    expect(await readFile(join(badmailDir, 'no-recipient.eml'), 'utf8')).toContain('Subject: Nobody');
    expect(await readFile(join(badmailDir, 'photo.jpg.reason'), 'utf8')).toMatch(/not an RFC 5322 message/);

    const [message] = await emulator.waitForMessages(1);
    expect(message!.data.toString()).toContain('fine');
    expect(await readdir(pickupDir)).toEqual(['.claimed']);
  });

  it("takes IIS's X-Sender/X-Receiver lines as the envelope and removes them", async () => {
    const { emulator, pickupDir } = await setup({ settleSeconds: 1 });
    await drop(
      pickupDir,
      'cdosys.eml',
      'x-sender: john@contoso.com\r\nx-receiver: carol@contoso.com\r\nx-receiver: <dave@contoso.com>\r\n' +
        'From: Reports <john@contoso.com>\r\nTo: everyone@contoso.com\r\nSubject: Nightly\r\n\r\nbody\r\n',
    );
    const [message] = await emulator.waitForMessages(1);
    expect(message!.mailFrom).toBe('john@contoso.com');
    expect(message!.rcptTo.sort()).toEqual(['carol@contoso.com', 'dave@contoso.com']);
    const header = headerOf(message!.data);
    expect(header).not.toMatch(/^x-(sender|receiver):/im);
    expect(header).toMatch(/^To: everyone@contoso\.com$/m);
  });

  it('after a crash, queues a claimed file once: never again when its message is already queued', async () => {
    const { emulator, relay, restart, pickupDir } = await setup({ settleSeconds: 1 });
    emulator.script('mail', BUSY);
    const content = (seq: string) =>
      `From: john@contoso.com\r\nTo: alice@contoso.com\r\nX-Seq: ${seq}\r\n\r\n${seq}\r\n`;
    await drop(pickupDir, 'a.eml', content('a'));
    const queued = await relay.waitForLog((r) => r.event === 'pickup-queued' && r.file === 'a.eml');
    expect(await relay.stop()).toBe(0);

    // What a crash leaves in .claimed/ at each step (pickup.ts explains the names):
    const claimed = join(pickupDir, '.claimed');
    // in the spool already (killed before the file was deleted): must not be sent twice;
    await writeFile(join(claimed, `TOKENA+${String(queued.queueId)}.a.eml`), content('a'));
    // claimed, never queued;
    await writeFile(join(claimed, 'TOKENB.b.eml'), content('b'));
    // being written to the spool, which never took it.
    await writeFile(join(claimed, 'TOKENC+L0ST0000000000.c.eml'), content('c'));

    emulator.clearScript();
    const again = await restart();
    const messages = await emulator.waitForMessages(3);
    await eventually(async () => (await readdir(claimed)).length === 0);
    await again.cli(['status', '--json']).then((r) => expect(JSON.parse(r.stdout).queue.queued).toBe(0));
    expect(messages.map((m) => sequenceOf(m.data)).sort()).toEqual(['a', 'b', 'c']);
    expect(emulator.messages).toHaveLength(3);
  });

  it('killed while picking up 300 files, delivers each exactly once after the restart', async () => {
    const { emulator, relay, restart, pickupDir } = await setup({ settleSeconds: 1 });
    emulator.script('mail', BUSY);
    const count = 300;
    for (let i = 0; i < count; i++) {
      await writeFile(
        join(pickupDir, `msg-${i}.eml`),
        `From: john@contoso.com\r\nTo: alice@contoso.com\r\nX-Seq: ${i}\r\n\r\nmessage ${i}\r\n`,
      );
    }
    await eventually(() => relay.logs.filter((r) => r.event === 'pickup-queued').length >= 50, 30_000, 5);
    await relay.stop('SIGKILL');
    const beforeCrash = relay.logs.filter((r) => r.event === 'pickup-queued').length;
    const leftClaimed = (await readdir(join(pickupDir, '.claimed'))).length;

    emulator.clearScript();
    const again = await restart();
    const messages = await emulator.waitForMessages(count, 60_000);
    await eventually(async () => (await readdir(pickupDir)).length === 1);
    expect(await readdir(join(pickupDir, '.claimed'))).toEqual([]);
    await eventually(async () => {
      const report = JSON.parse((await again.cli(['status', '--json'])).stdout) as {
        queue: { queued: number; active: number; deferred: number };
      };
      return report.queue.queued + report.queue.active + report.queue.deferred === 0;
    });
    const sequences = emulator.messages.map((m) => sequenceOf(m.data));
    expect(new Set(sequences).size).toBe(count);
    expect(sequences).toHaveLength(count);
    expect(messages.length).toBe(count);
    console.log(
      `pickup crash: killed after ${beforeCrash} of ${count} files were queued, ${leftClaimed} left in .claimed`,
    );
  });

  it("refuses a pickup folder inside the spool, says why, and still relays the devices' mail", async () => {
    const dataDir = await tempDir();
    const { emulator, relay } = await startRelayWithEmulator(teardown, {
      config: { pickup: { dir: join(dataDir, 'spool', 'pickup') } },
      dataDir,
    });
    const failed = await relay.waitForLog((r) => r.event === 'pickup-failed');
    expect(failed.reason).toMatch(/overlaps RelayDesk's spool/);
    await sendMail(relay.port, {
      from: 'john@contoso.com',
      to: ['alice@contoso.com'],
      data: 'From: john@contoso.com\r\nTo: alice@contoso.com\r\n\r\nscan\r\n',
    });
    await emulator.waitForMessages(1);
  });
});
