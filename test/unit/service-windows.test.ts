/**
 * The Windows service through WinSW as node-windows ships it: the generated XML uses only what that
 * winsw.exe (1.17) reads, read from the binary itself (its .NET string heap), so an element a newer
 * WinSW knows and this one ignores (`<username>`: the service would run as LocalSystem) is caught;
 * the install plan (wrapper and its .NET 4 config copied, data folder made private, automatic and
 * delayed start, restart on failure); and the plan runner against real files.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { winswXml, type ServiceSpec } from '../../electron/service/definitions.ts';
import {
  runWindowsPlan,
  shippedWinsw,
  windowsServicePlan,
  type WindowsStep,
} from '../../electron/service/windows.ts';

const scratch = mkdtempSync(join(tmpdir(), 'relaydesk-winsw-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const spec: ServiceSpec = {
  nodePath: 'C:\\Program Files\\nodejs\\node.exe',
  cliPath: 'C:\\Program Files\\RelayDesk\\bin\\relaydesk.js',
  configPath: 'D:\\Relay Desk\\config.json',
  dataDir: 'D:\\Relay Desk',
  port: 25,
};

/** Every identifier-like UTF-16 string in a .NET assembly: the names its code looks up in the XML. */
function dotnetStrings(file: string): Set<string> {
  const bytes = readFileSync(file);
  const found = new Set<string>();
  for (const offset of [0, 1]) {
    const text = bytes.subarray(offset, bytes.length - ((bytes.length - offset) % 2)).toString('utf16le');
    for (const match of text.matchAll(/[A-Za-z][A-Za-z-]{1,40}/g)) found.add(match[0]);
  }
  return found;
}

/** Element and attribute names, and attribute values, of an XML document (python's parser). */
function xmlNames(xml: string): { elements: string[]; attributes: string[]; values: string[] } {
  const script =
    'import json,sys,xml.etree.ElementTree as ET\n' +
    'root = ET.fromstring(sys.stdin.read())\n' +
    'nodes = list(root.iter())\n' +
    'print(json.dumps({"elements": sorted({n.tag for n in nodes}),' +
    ' "attributes": sorted({a for n in nodes for a in n.attrib}),' +
    ' "values": sorted({v for n in nodes for v in n.attrib.values()})}))';
  const result = spawnSync('python3', ['-c', script], { input: xml, encoding: 'utf8' });
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as { elements: string[]; attributes: string[]; values: string[] };
}

describe('the WinSW XML against the winsw.exe node-windows ships', () => {
  const winsw = shippedWinsw();

  it('ships winsw.exe with the .config that lets it run on .NET 4', () => {
    expect(existsSync(winsw.exe)).toBe(true);
    expect(readFileSync(winsw.config, 'utf8')).toContain('<supportedRuntime version="v4.0" />');
  });

  it('uses only elements, attributes and modes that this winsw.exe reads', () => {
    const known = dotnetStrings(winsw.exe);
    const { elements, attributes, values } = xmlNames(winswXml(spec));
    const unknown = (names: string[]) => names.filter((name) => name !== 'service' && !known.has(name));
    expect(unknown(elements)).toEqual([]);
    expect(unknown(attributes)).toEqual([]);
    // onfailure's action and the log mode; delays are numbers with a unit WinSW 1.x parses; an
    // <env>'s name and value are free text.
    const envText = ['RELAYDESK_CONTROL_GROUP', 'RelayDesk Admins'];
    expect(
      unknown(values.filter((value) => !/^\d+ (sec|min|hour)s?$/.test(value) && !envText.includes(value))),
    ).toEqual([]);
    expect(elements).toContain('env');
    for (const unit of ['sec', 'hour']) expect(known.has(unit)).toBe(true);
  });

  it('names the account as WinSW 1.x reads it: LocalService in domain and user, never <username>', () => {
    const xml = winswXml(spec);
    expect(xml).toContain(
      '<serviceaccount>\n    <domain>NT AUTHORITY</domain>\n    <user>LocalService</user>\n    <password></password>\n  </serviceaccount>',
    );
    expect(xml).not.toContain('<username>');
  });
});

describe('the install plan', () => {
  const plan = (action: 'install' | 'uninstall' | 'status') =>
    windowsServicePlan({
      action,
      xml: winswXml(spec),
      dataDir: spec.dataDir,
      serviceDir: 'C:\\Program Files\\RelayDesk Service',
      winsw: { exe: '/pkg/winsw.exe', config: '/pkg/winsw.exe.config' },
      adminUser: 'OFFICE\\anna',
    });
  const exe = 'C:\\Program Files\\RelayDesk Service\\relaydesk-service.exe';

  it('copies the wrapper and its config beside the XML, makes the data folder private, installs, delays, starts', () => {
    expect(plan('install')).toEqual<WindowsStep[]>([
      { kind: 'mkdir', path: 'C:\\Program Files\\RelayDesk Service' },
      { kind: 'copy', from: '/pkg/winsw.exe', to: exe },
      { kind: 'copy', from: '/pkg/winsw.exe.config', to: `${exe}.config` },
      {
        kind: 'write',
        path: 'C:\\Program Files\\RelayDesk Service\\relaydesk-service.xml',
        content: winswXml(spec),
      },
      { kind: 'mkdir', path: 'D:\\Relay Desk\\logs' },
      {
        kind: 'run',
        command: 'icacls.exe',
        args: [
          'D:\\Relay Desk',
          '/inheritance:r',
          '/grant:r',
          'NT AUTHORITY\\LocalService:(OI)(CI)M',
          'NT AUTHORITY\\SYSTEM:(OI)(CI)F',
          'BUILTIN\\Administrators:(OI)(CI)F',
          '/T',
          '/Q',
        ],
      },
      // The admin group, the installing administrator in it, and the folder of its ticket.
      {
        kind: 'run',
        command: 'net.exe',
        args: [
          'localgroup',
          'RelayDesk Admins',
          '/add',
          '/comment:Members may see and drive the RelayDesk service',
        ],
        okCodes: [0, 2],
      },
      {
        kind: 'run',
        command: 'net.exe',
        args: ['localgroup', 'RelayDesk Admins', 'OFFICE\\anna', '/add'],
        okCodes: [0, 2],
      },
      { kind: 'mkdir', path: 'C:\\ProgramData\\RelayDesk Control' },
      {
        kind: 'run',
        command: 'icacls.exe',
        args: ['C:\\ProgramData\\RelayDesk Control', '/setowner', '*S-1-5-32-544', '/T', '/Q'],
      },
      {
        kind: 'run',
        command: 'icacls.exe',
        args: [
          'C:\\ProgramData\\RelayDesk Control',
          '/inheritance:r',
          '/grant:r',
          '*S-1-5-19:(OI)(CI)M',
          '*S-1-5-18:(OI)(CI)F',
          '*S-1-5-32-544:(OI)(CI)F',
          'RelayDesk Admins:(OI)(CI)RX',
          '/T',
          '/Q',
        ],
      },
      { kind: 'run', command: exe, args: ['install'] },
      { kind: 'run', command: 'sc.exe', args: ['config', 'RelayDesk', 'start=', 'delayed-auto'] },
      {
        kind: 'run',
        command: 'sc.exe',
        args: ['failure', 'RelayDesk', 'reset=', '3600', 'actions=', 'restart/10000/restart/60000'],
      },
      { kind: 'run', command: exe, args: ['start'] },
    ]);
  });

  it('uninstall stops (already stopped is fine), uninstalls and removes the wrapper, keeping the data', () => {
    expect(plan('uninstall')).toEqual<WindowsStep[]>([
      { kind: 'run', command: exe, args: ['stop'], okCodes: [0, 1] },
      { kind: 'run', command: exe, args: ['uninstall'] },
      { kind: 'remove', path: 'C:\\Program Files\\RelayDesk Service' },
      { kind: 'remove', path: 'C:\\ProgramData\\RelayDesk Control' },
    ]);
    expect(plan('status')).toEqual([{ kind: 'run', command: 'sc.exe', args: ['query', 'RelayDesk'] }]);
  });
});

describe('running a plan', () => {
  const sink = () => {
    let text = '';
    return { write: (chunk: string) => void (text += chunk), text: () => text };
  };

  it('does the file steps for real and stops at the first command that fails, with its status', async () => {
    const dir = join(scratch, 'service');
    const out = sink();
    const err = sink();
    const status = await runWindowsPlan(
      [
        { kind: 'mkdir', path: dir },
        { kind: 'copy', from: shippedWinsw().exe, to: join(dir, 'relaydesk-service.exe') },
        { kind: 'write', path: join(dir, 'relaydesk-service.xml'), content: '<service/>' },
        { kind: 'run', command: process.execPath, args: ['-e', 'process.stdout.write("ok")'] },
        { kind: 'run', command: process.execPath, args: ['-e', 'process.exit(1)'], okCodes: [0, 1] },
        { kind: 'run', command: process.execPath, args: ['-e', 'process.exit(5)'] },
        { kind: 'remove', path: dir },
      ],
      out,
      err,
    );
    expect(status).toBe(5);
    expect(out.text()).toBe('ok');
    expect(err.text()).toMatch(/failed \(exit status 5\)/);
    expect(readFileSync(join(dir, 'relaydesk-service.xml'), 'utf8')).toBe('<service/>');
    expect(readFileSync(join(dir, 'relaydesk-service.exe'))).toEqual(readFileSync(shippedWinsw().exe));
  });
});
