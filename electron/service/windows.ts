/**
 * `relaydesk service install | uninstall | status` on Windows, done by RelayDesk itself: WinSW (the
 * winsw.exe that the npm package node-windows ships, no download) renamed beside its XML in a folder
 * only administrators may change, the data folder made private to the service's account with icacls,
 * then WinSW's own install and start. The steps are data (`windowsServicePlan`) so that a test reads
 * them on any OS; `runWindowsPlan` carries them out.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, win32 } from 'node:path';
import {
  SERVICE_ADMIN_GROUP,
  SERVICE_CONTROL_DIR,
  WINDOWS_SERVICE_ACCOUNT,
  WINDOWS_SERVICE_ID,
} from './definitions.ts';

/** Where the wrapper goes: under Program Files, so the service's own account cannot replace it. */
export function windowsServiceDir(env: NodeJS.ProcessEnv): string {
  return win32.join(env.ProgramFiles ?? 'C:\\Program Files', 'RelayDesk Service');
}

/** WinSW finds its XML by its own name: relaydesk-service.exe reads relaydesk-service.xml. */
export const WRAPPER_NAME = 'relaydesk-service';

/** winsw.exe and the .exe.config that lets it run on .NET 4 (Windows 10 and 11 have no .NET 2 by default). */
export function shippedWinsw(): { exe: string; config: string } {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('node-windows/package.json')), 'bin', 'winsw');
  return { exe: join(dir, 'winsw.exe'), config: join(dir, 'winsw.exe.config') };
}

export type WindowsStep =
  | { kind: 'mkdir'; path: string }
  | { kind: 'copy'; from: string; to: string }
  | { kind: 'write'; path: string; content: string }
  | { kind: 'remove'; path: string }
  /** `okCodes`: exit statuses that are not a failure (stopping a service that is not running). */
  | { kind: 'run'; command: string; args: string[]; okCodes?: number[] };

export interface WindowsPlanInput {
  action: 'install' | 'uninstall' | 'status';
  /** The WinSW XML (definitions.ts). */
  xml: string;
  dataDir: string;
  serviceDir: string;
  winsw: { exe: string; config: string };
  /** Where the relay writes the admin group's ticket (SERVICE_CONTROL_DIR.windows, under ProgramData). */
  controlDir?: string;
  /** Who is put in the admin group: the one installing (DOMAIN\user), or nobody. */
  adminUser: string | null;
}

/**
 * The admin group's ticket folder: the service writes, the group reads, nobody else. Accounts by SID
 * (`*S-1-5-19` LocalService, `*S-1-5-18` SYSTEM, `*S-1-5-32-544` Administrators) so that a Windows
 * in another language finds them; the group by the name install gave it. Owned by Administrators
 * first: ProgramData lets any user make a folder, and its maker could change its ACL back.
 */
function controlFolderSteps(controlDir: string): WindowsStep[] {
  const group = SERVICE_ADMIN_GROUP.windows;
  return [
    { kind: 'mkdir', path: controlDir },
    { kind: 'run', command: 'icacls.exe', args: [controlDir, '/setowner', '*S-1-5-32-544', '/T', '/Q'] },
    {
      kind: 'run',
      command: 'icacls.exe',
      args: [
        controlDir,
        '/inheritance:r',
        '/grant:r',
        '*S-1-5-19:(OI)(CI)M',
        '*S-1-5-18:(OI)(CI)F',
        '*S-1-5-32-544:(OI)(CI)F',
        `${group}:(OI)(CI)RX`,
        '/T',
        '/Q',
      ],
    },
  ];
}

/**
 * The admin group, and the installing user in it. `net localgroup` answers 2 for "already exists" and
 * "already a member", and for real errors too: the ACL step after it fails on a group that is not there.
 */
function adminGroupSteps(adminUser: string | null): WindowsStep[] {
  const group = SERVICE_ADMIN_GROUP.windows;
  const steps: WindowsStep[] = [
    {
      kind: 'run',
      command: 'net.exe',
      args: ['localgroup', group, '/add', '/comment:Members may see and drive the RelayDesk service'],
      okCodes: [0, 2],
    },
  ];
  if (adminUser) {
    steps.push({
      kind: 'run',
      command: 'net.exe',
      args: ['localgroup', group, adminUser, '/add'],
      okCodes: [0, 2],
    });
  }
  return steps;
}

export function windowsServicePlan(input: WindowsPlanInput): WindowsStep[] {
  const controlDir = input.controlDir ?? SERVICE_CONTROL_DIR.windows;
  const exe = win32.join(input.serviceDir, `${WRAPPER_NAME}.exe`);
  const wrapper = (verb: string, okCodes?: number[]): WindowsStep => ({
    kind: 'run',
    command: exe,
    args: [verb],
    ...(okCodes ? { okCodes } : {}),
  });
  switch (input.action) {
    case 'status':
      return [{ kind: 'run', command: 'sc.exe', args: ['query', WINDOWS_SERVICE_ID] }];
    case 'uninstall':
      return [
        // WinSW 1.x answers 1 when the service is already stopped: that is what uninstall wants.
        wrapper('stop', [0, 1]),
        wrapper('uninstall'),
        { kind: 'remove', path: input.serviceDir },
        // Only the ticket of a relay that no longer runs; the group stays (its members were chosen).
        { kind: 'remove', path: controlDir },
      ];
    case 'install':
      return [
        { kind: 'mkdir', path: input.serviceDir },
        { kind: 'copy', from: input.winsw.exe, to: exe },
        { kind: 'copy', from: input.winsw.config, to: `${exe}.config` },
        { kind: 'write', path: win32.join(input.serviceDir, `${WRAPPER_NAME}.xml`), content: input.xml },
        { kind: 'mkdir', path: win32.join(input.dataDir, 'logs') },
        {
          kind: 'run',
          command: 'icacls.exe',
          args: [
            input.dataDir,
            // Inherited entries would let every local user read the queue: replaced by these three.
            '/inheritance:r',
            '/grant:r',
            `${WINDOWS_SERVICE_ACCOUNT}:(OI)(CI)M`,
            'NT AUTHORITY\\SYSTEM:(OI)(CI)F',
            'BUILTIN\\Administrators:(OI)(CI)F',
            '/T',
            '/Q',
          ],
        },
        ...adminGroupSteps(input.adminUser),
        ...controlFolderSteps(controlDir),
        wrapper('install'),
        // Delayed: the relay starts once the network is up after boot (WinSW 1.x has no setting for it).
        { kind: 'run', command: 'sc.exe', args: ['config', WINDOWS_SERVICE_ID, 'start=', 'delayed-auto'] },
        // Should WinSW itself end, the service manager starts it again.
        {
          kind: 'run',
          command: 'sc.exe',
          args: ['failure', WINDOWS_SERVICE_ID, 'reset=', '3600', 'actions=', 'restart/10000/restart/60000'],
        },
        wrapper('start'),
      ];
  }
}

export interface StepOutput {
  write(text: string): void;
}

/** Carries out the plan; stops at the first step that fails and returns its exit status. */
export async function runWindowsPlan(
  steps: WindowsStep[],
  out: StepOutput,
  err: StepOutput,
): Promise<number> {
  for (const step of steps) {
    try {
      switch (step.kind) {
        case 'mkdir':
          await mkdir(step.path, { recursive: true });
          break;
        case 'copy':
          await copyFile(step.from, step.to);
          break;
        case 'write':
          // WinSW 1.x reads the XML with .NET's reader: UTF-8 as the declaration says.
          await writeFile(step.path, step.content, 'utf8');
          break;
        case 'remove':
          await rm(step.path, { recursive: true, force: true });
          break;
        case 'run': {
          const result = spawnSync(step.command, step.args, { encoding: 'utf8', windowsHide: true });
          if (result.error) {
            err.write(`${step.command} could not run: ${result.error.message}\n`);
            return 1;
          }
          out.write(result.stdout);
          err.write(result.stderr);
          const status = result.status ?? 1;
          if (!(step.okCodes ?? [0]).includes(status)) {
            err.write(
              `${win32.basename(step.command)} ${step.args.join(' ')} failed (exit status ${status}).\n`,
            );
            return status;
          }
          break;
        }
      }
    } catch (error) {
      const { code, message } = error as NodeJS.ErrnoException;
      err.write(
        code === 'EPERM' || code === 'EACCES'
          ? `Permission denied (${message}): run the command in an elevated Command Prompt (Run as administrator).\n`
          : `${message}\n`,
      );
      return 1;
    }
  }
  return 0;
}

/** `net session` answers 0 only in an elevated process: the usual test for administrator rights. */
export function isElevated(): boolean {
  return spawnSync('net', ['session'], { stdio: 'ignore', windowsHide: true }).status === 0;
}
