/**
 * `relaydesk queue list|flush|retry ID|delete ID`. With a relay running these act on it (through
 * the control socket); without one they act on the spool directly, and the relay picks the change
 * up when it starts.
 */
import { join } from 'node:path';
import { sendControlRequest, type ControlRequest } from '../relay/control.ts';
import { offlineEntries } from '../relay/queue.ts';
import { createSpool, inspectSpool } from '../relay/spool.ts';
import { dataDirFrom, type CliIo } from './context.ts';
import { formatQueue } from './format.ts';

export interface QueueFlags {
  'data-dir'?: string;
  json?: boolean;
}

const USAGE = 'Usage: relaydesk queue list [--json] | flush | retry ID | delete ID   [--data-dir DIR]\n';

export async function queueCommand(args: string[], flags: QueueFlags, io: CliIo): Promise<number> {
  const [action, id] = args;
  const dataDir = dataDirFrom(flags['data-dir'], io.env);
  let request: ControlRequest;
  switch (action) {
    case 'list':
      request = { op: 'queue-list' };
      break;
    case 'flush':
      request = { op: 'flush' };
      break;
    case 'retry':
    case 'delete':
      if (!id) {
        io.stderr.write(`queue ${action} needs a message ID (see \`relaydesk queue list\`).\n${USAGE}`);
        return 64;
      }
      request = { op: action, id };
      break;
    default:
      io.stderr.write(USAGE);
      return 64;
  }

  const response = await sendControlRequest(dataDir, request);
  if (response === null) return offline(request, id ?? '', dataDir, flags, io);
  if (!response.ok) {
    io.stderr.write(`${response.error}\n`);
    return 1;
  }
  if (request.op === 'queue-list') {
    io.stdout.write(
      flags.json ? `${JSON.stringify(response.queue ?? [], null, 2)}\n` : formatQueue(response.queue ?? []),
    );
  } else if (request.op === 'flush') {
    io.stdout.write(`Retrying ${response.count ?? 0} message(s) now.\n`);
  } else if (request.op === 'retry') {
    io.stdout.write(`Message ${id} will be retried now.\n`);
  } else {
    io.stdout.write(`Message ${id} deleted.\n`);
  }
  return 0;
}

async function offline(
  request: ControlRequest,
  id: string,
  dataDir: string,
  flags: QueueFlags,
  io: CliIo,
): Promise<number> {
  const root = join(dataDir, 'spool');
  const messages = await inspectSpool(root);
  if (request.op === 'queue-list') {
    const entries = offlineEntries(messages);
    io.stdout.write(flags.json ? `${JSON.stringify(entries, null, 2)}\n` : formatQueue(entries));
    return 0;
  }
  // A few records at most: a small segment, not the relay's 8 MB. Loaded as the relay would at its
  // start (none runs now), so that the spool knows where each message is.
  const spool = await createSpool(root, { segmentBytes: 64 * 1024 });
  await spool.load();
  const notRunning = 'RelayDesk is not running';
  if (request.op === 'flush') {
    let count = 0;
    for (const m of messages) {
      if (m.state.recipients.every((r) => r.status !== 'pending')) continue;
      await spool.saveState(m.envelope.id, { ...m.state, nextAttemptAt: 0 });
      count += 1;
    }
    await spool.close();
    io.stdout.write(`${notRunning}: ${count} message(s) will be tried as soon as it starts.\n`);
    return 0;
  }
  const message = messages.find((m) => m.envelope.id === id);
  if (!message) {
    io.stderr.write(`No message ${id} in the queue.\n`);
    return 1;
  }
  if (request.op === 'delete') {
    await spool.remove(message.envelope.id);
    await spool.close();
    io.stdout.write(`Message ${message.envelope.id} deleted.\n`);
    return 0;
  }
  const recipients = message.state.recipients.map((r) =>
    r.status === 'failed' ? { ...r, status: 'pending' as const } : r,
  );
  await spool.saveState(message.envelope.id, { ...message.state, recipients, nextAttemptAt: 0 });
  await spool.close();
  io.stdout.write(`${notRunning}: message ${message.envelope.id} will be tried as soon as it starts.\n`);
  return 0;
}
