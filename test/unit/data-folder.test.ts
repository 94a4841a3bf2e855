/**
 * The data folder's privacy. POSIX for real (modes on a real folder). Windows: icacls and whoami
 * cannot run on Linux, so these tests check the exact argument lists RelayDesk passes and the
 * reading of what the programs print, with samples in the form real Windows 10/11 prints them:
 * C:\'s default DACL (`(Get-Acl C:\).Sddl`: Administrators and SYSTEM full, Users read, Authenticated
 * Users "Modify" on what is created inside and "Append" on C:\ itself) and a folder made under it.
 * The last test runs the real programs on Windows; under Wine it says why it cannot.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  describeDataFolder,
  inspectDataFolder,
  otherWritersOf,
  parseSddlDacl,
  parseWhoamiSid,
  prepareDataFolder,
  privateAclArgs,
  type RunProgram,
} from '../../electron/relay/data-folder.ts';
import { tempDir } from '../integration/harness.ts';

const ALICE = 'S-1-5-21-3623811015-3361044348-30300820-1001';
/** `whoami /user /fo csv /nh` on Windows 10/11. */
const WHOAMI_ALICE = `"desktop-4f2k\\alice","${ALICE}"\r\n`;
/** `whoami /user /fo csv /nh` as a Windows service running as LocalSystem. */
const WHOAMI_SYSTEM = '"nt authority\\system","S-1-5-18"\r\n';
/** C:\ itself on Windows 10/11. */
const SDDL_DRIVE_ROOT =
  'O:SYG:SYD:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)(A;OICIIO;SDGXGWGR;;;AU)(A;;LC;;;AU)';
/** C:\RelayDesk made by Explorer or mkdir: `icacls C:\RelayDesk` lists "Authenticated Users:(I)(M)". */
const SDDL_UNDER_DRIVE_ROOT =
  'D:AI(A;OICIID;FA;;;BA)(A;OICIID;FA;;;SY)(A;OICIID;0x1200a9;;;BU)(A;ID;0x1301bf;;;AU)(A;OICIIOID;SDGXGWGR;;;AU)';
/** %APPDATA%\RelayDesk: the profile is already private. */
const SDDL_APPDATA = `D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;FA;;;${ALICE})`;
/** What `privateAclArgs` leaves: inheritance removed (P), three explicit grants. */
const SDDL_PRIVATE = `D:PAI(A;OICI;FA;;;${ALICE})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)`;

const ENV = { SystemRoot: 'C:\\Windows' };
const ICACLS = 'C:\\Windows\\System32\\icacls.exe';
const WHOAMI = 'C:\\Windows\\System32\\whoami.exe';

const folders: string[] = [];
afterEach(async () => {
  for (const dir of folders.splice(0)) await rm(dir, { recursive: true, force: true });
});

/**
 * Stands in for whoami.exe and icacls.exe: records each call; `/save FILE` writes the SDDL in
 * icacls's format (UTF-16LE, the name on one line and the SDDL on the next).
 */
function windowsPrograms(sddl: string, whoami = WHOAMI_ALICE) {
  const calls: { file: string; args: string[] }[] = [];
  const run: RunProgram = async (file, args) => {
    calls.push({ file, args });
    if (file === WHOAMI) return whoami;
    if (args[1] === '/save') await writeFile(args[2]!, Buffer.from(`RelayDesk\r\n${sddl}\r\n`, 'utf16le'));
    return '';
  };
  return { calls, run };
}

describe('Windows ACLs, read from icacls /save', () => {
  it('reads SDDL rights in both spellings and resolves the SDDL names of well-known accounts', () => {
    const entries = parseSddlDacl(SDDL_UNDER_DRIVE_ROOT);
    expect(entries.map((e) => e.sid)).toEqual([
      'S-1-5-32-544',
      'S-1-5-18',
      'S-1-5-32-545',
      'S-1-5-11',
      'S-1-5-11',
    ]);
    expect(entries[0]!.mask).toBe(0x1f01ff);
    expect(entries[3]).toEqual({ allow: true, sid: 'S-1-5-11', mask: 0x1301bf, inherited: false });
    expect(entries[4]!.mask).toBe(0x10000 | 0x20000000 | 0x40000000 | 0x80000000);
    expect(entries[4]!.inherited).toBe(true);
  });

  it('finds who else can change a folder made under C:\\, and nobody in a private one', () => {
    expect(otherWritersOf(parseSddlDacl(SDDL_UNDER_DRIVE_ROOT), ALICE)).toEqual(['Authenticated Users']);
    // Append data (create subfolders) on C:\ itself is a write too; Users' read and execute is not.
    expect(otherWritersOf(parseSddlDacl(SDDL_DRIVE_ROOT), ALICE)).toEqual(['Authenticated Users']);
    expect(otherWritersOf(parseSddlDacl(SDDL_APPDATA), ALICE)).toEqual([]);
    expect(otherWritersOf(parseSddlDacl(SDDL_PRIVATE), ALICE)).toEqual([]);
    // Another account's full control is reported by SID (no name lookup that depends on the language).
    const bob = 'S-1-5-21-3623811015-3361044348-30300820-1002';
    expect(otherWritersOf(parseSddlDacl(`${SDDL_PRIVATE}(A;OICI;FA;;;${bob})`), ALICE)).toEqual([bob]);
    // A deny entry grants nothing.
    expect(otherWritersOf(parseSddlDacl(`${SDDL_PRIVATE}(D;OICI;FA;;;WD)`), ALICE)).toEqual([]);
  });

  it("reads the account's SID from whoami, and nothing from Wine's whoami", () => {
    expect(parseWhoamiSid(WHOAMI_ALICE)).toBe(ALICE);
    expect(parseWhoamiSid(WHOAMI_SYSTEM)).toBe('S-1-5-18');
    expect(parseWhoamiSid('VM\\root\r\n')).toBeNull();
  });
});

describe('Windows data folder, with the exact program calls', () => {
  it('makes a folder it creates private: the account, SYSTEM, Administrators, inheritance removed', async () => {
    const parent = await tempDir();
    folders.push(parent);
    const dir = join(parent, 'RelayDesk');
    const { calls, run } = windowsPrograms(SDDL_PRIVATE);
    const report = await prepareDataFolder(dir, { platform: 'win32', env: ENV, run });

    expect(privateAclArgs('C:\\RelayDesk', ALICE)).toEqual([
      'C:\\RelayDesk',
      '/inheritance:r',
      '/grant:r',
      `*${ALICE}:(OI)(CI)F`,
      '*S-1-5-18:(OI)(CI)F',
      '*S-1-5-32-544:(OI)(CI)F',
      '/q',
    ]);
    expect(calls.map((c) => [c.file, ...c.args.slice(0, 2)])).toEqual([
      [WHOAMI, '/user', '/fo'],
      [ICACLS, dir, '/inheritance:r'],
      [ICACLS, dir, '/save'],
    ]);
    expect(calls[1]!.args).toEqual(privateAclArgs(dir, ALICE));
    expect(calls[2]!.args).toEqual([dir, '/save', expect.stringMatching(/acl\.txt$/), '/q']);
    expect(report).toMatchObject({ created: true, otherWriters: [], unknown: null });
    expect(describeDataFolder(report)).toBeNull();
  });

  it('leaves an existing folder as it is and reports who else can change it, with the fix', async () => {
    const dir = await tempDir();
    folders.push(dir);
    const { calls, run } = windowsPrograms(SDDL_UNDER_DRIVE_ROOT);
    const report = await prepareDataFolder(dir, { platform: 'win32', env: ENV, run });
    expect(calls.some((c) => c.args.includes('/inheritance:r'))).toBe(false);
    expect(report.otherWriters).toEqual(['Authenticated Users']);
    expect(describeDataFolder(report)).toBe(
      `The data folder ${dir} can be changed by Authenticated Users: they could alter or replace queued mail, ` +
        `the admin token and the LAN TLS key. Make it private: icacls ${dir} /inheritance:r /grant:r ` +
        `"*${ALICE}:(OI)(CI)F" "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F"`,
    );
  });

  it('says so when it cannot tell (as under Wine, whose whoami prints no SID)', async () => {
    const dir = await tempDir();
    folders.push(dir);
    const { run } = windowsPrograms('', 'VM\\root\r\n');
    const report = await prepareDataFolder(dir, { platform: 'win32', env: ENV, run });
    expect(describeDataFolder(report)).toMatch(/^Could not check who can change the data folder .*whoami/);
  });
});

describe.skipIf(process.platform === 'win32')('POSIX data folder', () => {
  it('creates it 0700 and reports group and world write access on an existing one', async () => {
    const parent = await tempDir();
    folders.push(parent);
    const dir = join(parent, 'a', 'RelayDesk');
    expect(await inspectDataFolder(dir)).toBeNull();
    expect(await prepareDataFolder(dir)).toMatchObject({ created: true, otherWriters: [] });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    await chmod(dir, 0o775);
    expect((await inspectDataFolder(dir))!.otherWriters).toEqual([expect.stringMatching(/^its group/)]);
    await chmod(dir, 0o757);
    const report = (await prepareDataFolder(dir))!;
    expect(report).toMatchObject({ created: false, otherWriters: ['every user (others)'] });
    expect(describeDataFolder(report)).toContain(`Make it private: chmod 700 '${dir}'`);
    // RelayDesk does not change a folder it did not create.
    expect((await stat(dir)).mode & 0o777).toBe(0o757);
  });
});

describe('on Windows itself', () => {
  it('creates a private folder with the real icacls and reads it back', async (context) => {
    context.skip(process.platform !== 'win32', 'Windows only: icacls.exe and whoami.exe');
    const whoami = execFileSync('whoami', ['/user', '/fo', 'csv', '/nh'], { encoding: 'utf8' });
    context.skip(
      parseWhoamiSid(whoami) === null,
      `Wine 8 cannot: its whoami.exe ignores /user (printed ${JSON.stringify(whoami.trim())}) and its ` +
        'icacls.exe is a stub that exits 0, prints nothing and changes no ACL',
    );
    const parent = await tempDir();
    folders.push(parent);
    const dir = join(parent, 'RelayDesk');
    await mkdir(parent, { recursive: true });
    const report = await prepareDataFolder(dir);
    expect(report).toMatchObject({ created: true, otherWriters: [], unknown: null });
    const listing = execFileSync('icacls', [dir], { encoding: 'utf8' });
    // No inherited entry is left: "(I)" marks one in icacls's listing.
    expect(listing).not.toContain('(I)');
  });
});
