/**
 * The Status page's one source of truth (renderer/src/lib/status-view.ts): each contradiction issue 15
 * found on the page is a case here, with the relay status, queue, activity and test email that
 * produced it.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { RelayConfig } from '../../electron/config/types.ts';
import type { Diagnosis } from '../../electron/relay/diagnosis.ts';
import type {
  ActivityEntry,
  NetworkSuggestion,
  QueueItem,
  TestEmailView,
} from '../../electron/shared/ipc.ts';
import { formatTime } from '../../renderer/src/lib/format.ts';
import { queueRows, statusView, type StatusInput } from '../../renderer/src/lib/status-view.ts';
import { appStatus } from '../fixtures/relay-status.ts';

const NOW = new Date(2026, 11, 3, 15, 0, 0).getTime();
const MINUTE = 60_000;

const AUTH_REFUSED: Diagnosis = {
  id: 'auth-failed',
  title: 'Sign-in refused',
  explanation: 'The mail server refused the user name or password.',
  fix: 'Enter the password again.',
  action: 'hold',
} as unknown as Diagnosis;

function config(change: (c: RelayConfig) => void = () => {}): RelayConfig {
  const c = defaultConfig();
  c.upstream = {
    ...c.upstream,
    preset: 'microsoft365',
    host: 'smtp.office365.com',
    user: 'john@contoso.com',
  };
  change(c);
  return c;
}

const NETWORK: NetworkSuggestion = {
  hostname: 'FRONTDESK-PC',
  networks: [{ interfaceName: 'Ethernet', address: '192.168.1.20', subnet: '192.168.1.0/24' }],
};

function item(id: string, change: Partial<QueueItem> = {}): QueueItem {
  return {
    id,
    status: 'queued',
    receivedAt: NOW - MINUTE,
    client: '192.168.1.50',
    mailFrom: 'scanner@contoso.com',
    rcptTo: ['bob@fabrikam.com'],
    size: 2048,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    lastDiagnosis: null,
    subject: `Scan ${id}`,
    ...change,
  };
}

function activityRow(id: string, change: Partial<ActivityEntry> = {}): ActivityEntry {
  return {
    id,
    time: NOW - MINUTE,
    device: '192.168.1.50',
    from: 'scanner@contoso.com',
    to: ['bob@fabrikam.com'],
    subject: 'Scan',
    size: 2048,
    result: 'queued',
    reply: null,
    ...change,
  };
}

function testEmail(ok: boolean, at = NOW - MINUTE): TestEmailView {
  return {
    ok,
    to: 'john@contoso.com',
    from: 'john@contoso.com',
    reply: ok ? '250 2.0.0 OK <id@contoso.com> [Hostname=AM0PR01]' : '535 5.7.3 Authentication unsuccessful',
    diagnosis: null,
    at,
  };
}

function input(change: Partial<StatusInput> = {}): StatusInput {
  return {
    status: appStatus(),
    queue: [],
    activity: [],
    lastTest: null,
    config: config(),
    network: NETWORK,
    reachable: true,
    now: NOW,
    ...change,
  };
}

describe('where to point the devices', () => {
  it('says the address, port, encryption and sign-in in one sentence', () => {
    expect(statusView(input()).devicesSentence).toBe(
      'Devices send to 192.168.1.20, port 25, no encryption, no sign-in.',
    );
  });

  it('uses the configured port and says "sign-in" when device users are checked', () => {
    const view = statusView(
      input({
        status: appStatus({ listeners: [{ host: '0.0.0.0', port: 2525, tls: 'starttls' }] }),
        config: config(
          (c) => (c.lanAuth = { mode: 'check', users: [{ user: 'ricoh', passwordHash: 'scrypt$x' }] }),
        ),
      }),
    );
    expect(view.devicesSentence).toBe(
      'Devices send to 192.168.1.20, port 2525, encryption optional (STARTTLS), sign-in with a device user name and password.',
    );
  });

  it('names every address of a PC on two networks, and a specific listen address as it is', () => {
    const twoNetworks: NetworkSuggestion = {
      hostname: 'PC',
      networks: [...NETWORK.networks, { interfaceName: 'Wi-Fi', address: '10.0.0.7', subnet: '10.0.0.0/24' }],
    };
    expect(statusView(input({ network: twoNetworks })).devicesSentence).toContain(
      '192.168.1.20 or 10.0.0.7, port 25',
    );
    const bound = statusView(
      input({ status: appStatus({ listeners: [{ host: '10.0.0.7', port: 25, tls: 'none' }] }) }),
    );
    expect(bound.devicesSentence).toContain('Devices send to 10.0.0.7, port 25');
  });

  it('warns when the relay listens on every network but allows only this PC', () => {
    const onlyThisPc = statusView(input({ status: appStatus({ allowedClients: ['127.0.0.1', '::1'] }) }));
    expect(onlyThisPc.onlyThisPcWarning).toMatch(/listens on every network, but only this PC may send/);
    expect(statusView(input()).onlyThisPcWarning).toBeNull();
    const loopbackOnly = statusView(
      input({
        status: appStatus({
          allowedClients: ['127.0.0.1'],
          listeners: [{ host: '127.0.0.1', port: 25, tls: 'none' }],
        }),
      }),
    );
    expect(loopbackOnly.onlyThisPcWarning).toBeNull();
    expect(loopbackOnly.devicesSentence).toMatch(/^Only programs on this PC can send/);
  });
});

describe('one source of truth: the contradictions issue 15 found', () => {
  it('does not say "Nothing sent yet" after a delivered test email', () => {
    const activity = [activityRow('test-1', { result: 'test-delivered', device: 'RelayDesk' })];
    const view = statusView(input({ activity, lastTest: testEmail(true) }));
    expect(view.upstreamLine).not.toBe('Nothing sent yet');
    expect(view.upstreamLine).toMatch(/^Delivering/);
    expect(view.headline).toBe('RelayDesk is running and delivering mail.');
    // Reloaded page: only the activity row knows of the test, and says the same.
    expect(statusView(input({ activity })).upstreamLine).toMatch(/^Delivering/);
  });

  it('does not say "0 delivered today" beside "Test email delivered"', () => {
    const activity = [activityRow('test-1', { result: 'test-delivered', device: 'RelayDesk' })];
    const view = statusView(input({ activity }));
    expect(view.activity[0]!.label).toBe('Test email delivered');
    expect(view.today.delivered).toBe(1);
    expect(view.today.testEmails).toBe(1);
  });

  it('does not say everything was delivered after a delete', () => {
    // One message received today, none delivered, the queue empty: it was deleted, not delivered.
    const view = statusView(
      input({ status: appStatus({ today: { ...appStatus().today, accepted: 1 } }), queue: [] }),
    );
    expect(view.queue.summary).not.toMatch(/delivered/);
    expect(view.queue.summary).toBe('No mail is waiting to be sent.');
  });

  it('shows a held message as held, in the queue and in recent activity, without a retry time of its own', () => {
    const hold = {
      since: NOW - 5 * MINUTE,
      reason: '535 5.7.3 Authentication unsuccessful',
      diagnosis: AUTH_REFUSED,
      retryAt: NOW + 10 * MINUTE,
    };
    const status = appStatus({
      health: 'error',
      upstream: { ...appStatus().upstream, state: 'held', hold },
      queue: { queued: 0, active: 0, deferred: 0, held: 1, failed: 0 },
    });
    const queue = [item('m1', { status: 'held', nextAttemptAt: hold.retryAt })];
    // It arrived during the hold: activity recorded it as queued and nothing has happened to it since.
    const view = statusView(input({ status, queue, activity: [activityRow('m1', { result: 'queued' })] }));
    expect(view.activity[0]!.label).toBe('Held (needs a fix)');
    const [row] = queueRows(queue, NOW);
    expect(row!.state).toMatch(/^On hold/);
    expect(row!.state).not.toContain(formatTime(hold.retryAt, NOW));
    expect(view.headline).toBe('Delivery is on hold: Sign-in refused. Mail is kept until this is fixed.');
  });

  it('is not a green "Running" while the last test email failed', () => {
    const view = statusView(
      input({
        lastTest: testEmail(false),
        activity: [activityRow('test-2', { result: 'test-failed', device: 'RelayDesk' })],
      }),
    );
    expect(view.badge).toBe('attention');
    expect(view.badgeLabel).not.toBe('Running');
    expect(view.headline).toMatch(/^The last test email was not delivered\. /);
    expect(view.upstreamLine).toBe('The last test email failed');
  });

  it('is green again once mail gets through after the failed test', () => {
    const status = appStatus({
      upstream: {
        ...appStatus().upstream,
        state: 'ok',
        lastSuccessAt: NOW - 1000,
        lastSuccessReply: '250 OK',
      },
    });
    const view = statusView(input({ status, lastTest: testEmail(false, NOW - MINUTE) }));
    expect(view.badge).toBe('ok');
    expect(view.badgeLabel).toBe('Running');
  });
});

describe('when the relay cannot be reached', () => {
  it('says so, whatever the last status said', () => {
    const view = statusView(input({ reachable: false }));
    expect(view.badge).toBe('unreachable');
    expect(view.badgeLabel).toBe('Cannot be reached');
    expect(view.headline).toMatch(/^RelayDesk cannot be reached/);
  });
});

describe('a long queue', () => {
  const many = Array.from({ length: 500 }, (_, i) =>
    item(`m${i}`, { status: 'deferred', nextAttemptAt: NOW + MINUTE }),
  );

  it("counts the messages and estimates the time at Microsoft 365's rate from the config", () => {
    const view = statusView(input({ queue: many }));
    expect(view.queue.total).toBe(500);
    expect(view.queue.summary).toBe('500 messages in the queue: 500 waiting.');
    expect(view.queue.estimate).toBe("About 17 minutes to send at Microsoft's 30 a minute.");
    const faster = statusView(
      input({ queue: many, config: config((c) => (c.upstream.messagesPerMinute = 100)) }),
    );
    expect(faster.queue.estimate).toBe("About 5 minutes to send at Microsoft's 100 a minute.");
  });

  it("says nothing of Microsoft's limit for another mail server, or for a minute's worth", () => {
    const other = config((c) => {
      c.upstream.preset = 'custom';
      c.upstream.host = 'mail.contoso.local';
    });
    expect(statusView(input({ queue: many, config: other })).queue.estimate).toBeNull();
    expect(statusView(input({ queue: many.slice(0, 30) })).queue.estimate).toBeNull();
  });

  it('shows each message with its subject; failed ones are not counted as waiting', () => {
    const queue = [item('a'), item('b', { status: 'failed', subject: null })];
    const view = statusView(input({ queue }));
    expect(view.queue.summary).toBe('2 messages in the queue: 1 waiting, 1 failed.');
    expect(queueRows(queue, NOW).map((r) => r.subject)).toEqual(['Scan a', '(no subject)']);
  });
});

describe('times', () => {
  it('gives the date with a time that is not today, and the year with one from another year', () => {
    const day = (ms: number) => new Date(ms).toLocaleDateString([], { day: 'numeric', month: 'short' });
    const yesterday = NOW - 24 * 60 * MINUTE;
    const lastYear = new Date(2025, 11, 3, 15, 0, 0).getTime();
    expect(formatTime(NOW - MINUTE, NOW)).not.toContain(day(NOW));
    expect(formatTime(yesterday, NOW)).toContain(day(yesterday));
    expect(formatTime(lastYear, NOW)).toContain('2025');
    expect(formatTime(yesterday, NOW)).not.toContain('2026');
  });
});
