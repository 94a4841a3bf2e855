/**
 * The upstream's own limits, learned from its EHLO: SIZE and SMTPUTF8 go to the store the LAN side
 * reads on every connection, a message above SIZE fails before it is uploaded, and `check` says what
 * devices are held to.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { RelayConfig } from '../../electron/config/types.ts';
import { checkUpstream } from '../../electron/relay/check.ts';
import { diagnose } from '../../electron/relay/diagnosis.ts';
import { createUpstreamCapabilities } from '../../electron/relay/upstream-capabilities.ts';
import { createUpstreamTransport } from '../../electron/relay/upstream.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import type { RawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import { closedAfterTest, inMemoryJob, scriptedUpstream } from '../fixtures/scripted-upstream.ts';

const upstreamWith = (ehlo: string[]) => scriptedUpstream({ ehlo });

function configFor(server: RawSmtpServer): RelayConfig {
  const base = defaultConfig();
  return {
    ...base,
    upstream: {
      ...base.upstream,
      host: '127.0.0.1',
      port: server.port,
      security: 'none',
      auth: 'none',
      user: null,
      timeoutSeconds: 2,
    },
  };
}

function job(bodyBytes: number) {
  return inMemoryJob(Buffer.concat([Buffer.from('Subject: scan\r\n\r\n'), Buffer.alloc(bodyBytes, 'a')]));
}

describe("the upstream's SIZE and SMTPUTF8", () => {
  it('are learned on connect, and a message above SIZE fails before it is uploaded', async () => {
    const server = await upstreamWith(['PIPELINING', 'SIZE 2000', 'SMTPUTF8']);
    const capabilities = createUpstreamCapabilities();
    const transport = closedAfterTest(
      await createUpstreamTransport(configFor(server).upstream, {
        secrets: createMemoryStore(),
        capabilities,
      }),
    );
    expect(capabilities.get()).toEqual({ smtpUtf8: undefined, sizeLimit: undefined });

    expect(await transport.send(job(100))).toMatchObject({ ok: true });
    expect(capabilities.get()).toEqual({ smtpUtf8: true, sizeLimit: 2000 });

    const outcome = await transport.send(job(5000));
    expect(outcome).toMatchObject({ ok: false, failure: { kind: 'config', code: 'UPSTREAM_SIZE_EXCEEDED' } });
    expect(diagnose(outcome.ok ? ({} as never) : outcome.failure)).toMatchObject({
      id: 'upstream-size-exceeded',
      class: 'message',
      action: 'fail-message',
    });
    const commands = server.sessions.flatMap((session) => session.commands);
    expect(commands.filter((command) => command.startsWith('MAIL'))).toHaveLength(1);
  });

  it('`check` says the upstream holds devices below upstream.maxMessageBytes', async () => {
    const server = await upstreamWith(['PIPELINING', 'SIZE 10485760']);
    const result = await checkUpstream(configFor(server), { secrets: createMemoryStore(), env: {} });
    expect(result.ok).toBe(true);
    const size = result.steps.find((step) => step.name === 'size');
    expect(size?.detail).toMatch(/up to 10\.0 MB \(SIZE 10485760\), less than upstream\.maxMessageBytes/);
    expect(size?.detail).toContain('552 5.3.4');
  });

  it('`check` says when the upstream announces no limit', async () => {
    const server = await upstreamWith(['PIPELINING']);
    const result = await checkUpstream(configFor(server), { secrets: createMemoryStore(), env: {} });
    expect(result.steps.find((step) => step.name === 'size')?.detail).toMatch(/no fixed limit \(no SIZE\)/);
  });
});
