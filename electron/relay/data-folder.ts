/**
 * The data folder holds the queue, the admin token, the LAN TLS key and the logs: nobody but the
 * account that runs RelayDesk (and the machine's administrators) may change it.
 *
 * POSIX: created 0700, and a folder that its group or others can write is reported.
 * Windows: file modes mean nothing there, and a folder made under C:\ inherits "Authenticated Users:
 * Modify". A folder RelayDesk creates gets an explicit ACL (the account, SYSTEM, Administrators;
 * inheritance removed) through icacls; an existing one is read with `icacls /save`, whose SDDL names
 * accounts by SID, so the reading does not depend on the language Windows speaks.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, win32 } from 'node:path';

/** Runs a program without a shell and returns its standard output (rejects on a non-zero exit). */
export type RunProgram = (file: string, args: string[]) => Promise<string>;

export interface DataFolderDeps {
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
  run?: RunProgram;
}

export interface DataFolderReport {
  dir: string;
  /** True when RelayDesk made the folder just now (and made it private). */
  created: boolean;
  /** Who else can change files in it (e.g. "Authenticated Users", "others"); empty when private. */
  otherWriters: string[];
  /** Why the permissions could not be read or set, when they could not. */
  unknown: string | null;
  /** The command that makes the folder private, for the warning. */
  fix: string;
}

const SYSTEM_SID = 'S-1-5-18';
const ADMINISTRATORS_SID = 'S-1-5-32-544';
/** Inheritable ACEs that apply to whoever owns (created) each file: the account itself in practice. */
const CREATOR_OWNER_SID = 'S-1-3-0';
const OWNER_RIGHTS_SID = 'S-1-3-4';
const TRUSTED_INSTALLER_SID = 'S-1-5-80-956008885-3418522649-1831038044-1850952456-2151100554';

/** SDDL's two-letter names for the SIDs a folder's ACL commonly holds (MS-DTYP 2.4.2.4). */
const SDDL_SID_ALIASES: Record<string, string> = {
  SY: SYSTEM_SID,
  BA: ADMINISTRATORS_SID,
  BU: 'S-1-5-32-545',
  PU: 'S-1-5-32-547',
  AU: 'S-1-5-11',
  IU: 'S-1-5-4',
  NU: 'S-1-5-2',
  AN: 'S-1-5-7',
  WD: 'S-1-1-0',
  CO: CREATOR_OWNER_SID,
  OW: OWNER_RIGHTS_SID,
};

const SID_NAMES: Record<string, string> = {
  'S-1-5-32-545': 'Users',
  'S-1-5-32-547': 'Power Users',
  'S-1-5-11': 'Authenticated Users',
  'S-1-5-4': 'Interactive users',
  'S-1-5-2': 'Network logons',
  'S-1-5-7': 'Anonymous',
  'S-1-1-0': 'Everyone',
};

/** SDDL access-right codes and their masks (MS-DTYP 2.4.2.4; the file names of the DS bits in brackets). */
const SDDL_RIGHTS: Record<string, number> = {
  GA: 0x10000000,
  GR: 0x80000000,
  GW: 0x40000000,
  GX: 0x20000000,
  FA: 0x1f01ff,
  FR: 0x120089,
  FW: 0x120116,
  FX: 0x1200a0,
  SD: 0x10000,
  RC: 0x20000,
  WD: 0x40000,
  WO: 0x80000,
  CC: 0x1, // [read data / list folder]
  DC: 0x2, // [write data / add file]
  LC: 0x4, // [append data / add subfolder]
  SW: 0x8,
  RP: 0x10,
  WP: 0x20,
  DT: 0x40, // [delete child]
  LO: 0x80,
  CR: 0x100,
};

/** Rights that let an account change or remove what the folder holds, or its ACL. */
const WRITE_MASK = 0x2 | 0x4 | 0x40 | 0x10000 | 0x40000 | 0x80000 | 0x40000000 | 0x10000000;

export interface AccessEntry {
  allow: boolean;
  sid: string;
  mask: number;
  /** Applies to the files and folders inside (OI / CI), not only to the folder itself. */
  inherited: boolean;
}

/** The DACL of an SDDL string, e.g. `D:PAI(A;OICI;FA;;;SY)(A;OICI;0x1301bf;;;AU)`. */
export function parseSddlDacl(sddl: string): AccessEntry[] {
  const dacl = /D:[A-Z]*((?:\([^)]*\))*)/.exec(sddl);
  if (!dacl) throw new Error(`no DACL in "${sddl}"`);
  const entries: AccessEntry[] = [];
  for (const [, ace] of dacl[1]!.matchAll(/\(([^)]*)\)/g)) {
    const [type, flags = '', rights = '', , , sid = ''] = ace!.split(';');
    entries.push({
      allow: type === 'A',
      sid: SDDL_SID_ALIASES[sid] ?? sid,
      mask: parseRights(rights),
      inherited: /OI|CI/.test(flags),
    });
  }
  return entries;
}

function parseRights(rights: string): number {
  if (/^0x[0-9a-f]+$/i.test(rights)) return Number.parseInt(rights.slice(2), 16);
  let mask = 0;
  for (let i = 0; i < rights.length; i += 2) mask |= SDDL_RIGHTS[rights.slice(i, i + 2)] ?? 0;
  return mask;
}

/** Accounts other than the trusted ones that an ACL lets change things; names where Windows has one. */
export function otherWritersOf(entries: AccessEntry[], accountSid: string): string[] {
  const trusted = new Set([
    accountSid,
    SYSTEM_SID,
    ADMINISTRATORS_SID,
    CREATOR_OWNER_SID,
    OWNER_RIGHTS_SID,
    TRUSTED_INSTALLER_SID,
  ]);
  const writers = entries
    .filter((entry) => entry.allow && (entry.mask & WRITE_MASK) !== 0 && !trusted.has(entry.sid))
    .map((entry) => SID_NAMES[entry.sid] ?? entry.sid);
  return [...new Set(writers)];
}

/** The account's SID from `whoami /user /fo csv /nh`: `"contoso\alice","S-1-5-21-…-1001"`. */
export function parseWhoamiSid(output: string): string | null {
  return /"(S-1-[0-9-]+)"\s*$/m.exec(output)?.[1] ?? null;
}

function systemProgram(env: NodeJS.ProcessEnv, name: string): string {
  // A full path: a program of that name in the working folder must not run instead.
  return win32.join(env.SystemRoot ?? env.windir ?? 'C:\\Windows', 'System32', name);
}

/** The icacls arguments that make `dir` private to `accountSid`, SYSTEM and Administrators. */
export function privateAclArgs(dir: string, accountSid: string): string[] {
  const full = (sid: string) => `*${sid}:(OI)(CI)F`;
  return [
    dir,
    '/inheritance:r',
    '/grant:r',
    full(accountSid),
    full(SYSTEM_SID),
    full(ADMINISTRATORS_SID),
    '/q',
  ];
}

const runProgram: RunProgram = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { windowsHide: true, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${win32.basename(file)} failed: ${(stderr || error.message).trim()}`));
      else resolve(stdout);
    });
  });

async function accountSid(deps: Required<DataFolderDeps>): Promise<string> {
  const output = await deps.run(systemProgram(deps.env, 'whoami.exe'), ['/user', '/fo', 'csv', '/nh']);
  const sid = parseWhoamiSid(output);
  if (!sid) throw new Error(`whoami /user printed no SID (${JSON.stringify(output.trim().slice(0, 80))})`);
  return sid;
}

async function readWindowsAcl(dir: string, deps: Required<DataFolderDeps>): Promise<AccessEntry[]> {
  const scratch = await mkdtemp(join(tmpdir(), 'relaydesk-acl-'));
  try {
    const saved = join(scratch, 'acl.txt');
    await deps.run(systemProgram(deps.env, 'icacls.exe'), [dir, '/save', saved, '/q']);
    // icacls writes UTF-16LE: the folder's name on one line, its SDDL on the next.
    const text = (await readFile(saved)).toString('utf16le').replace(/^\uFEFF/, '');
    const sddl = text.split(/\r?\n/).find((line) => line.startsWith('D:'));
    if (!sddl) throw new Error(`icacls /save wrote no ACL (${JSON.stringify(text.slice(0, 80))})`);
    return parseSddlDacl(sddl);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function posixFix(dir: string): string {
  return `chmod 700 '${dir.replaceAll("'", "'\\''")}'`;
}

function windowsFix(dir: string, sid: string): string {
  return `icacls ${privateAclArgs(dir, sid)
    .slice(0, -1)
    .map((arg) => (/[\s()]/.test(arg) ? `"${arg}"` : arg))
    .join(' ')}`;
}

async function posixWriters(dir: string): Promise<string[]> {
  const stats = await stat(dir);
  const writers: string[] = [];
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid && stats.uid !== 0) writers.push(`its owner (uid ${stats.uid})`);
  if (stats.mode & 0o020) writers.push(`its group (gid ${stats.gid})`);
  if (stats.mode & 0o002) writers.push('every user (others)');
  return writers;
}

async function exists(dir: string): Promise<boolean> {
  try {
    await stat(dir);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function withDefaults(options: DataFolderDeps): Required<DataFolderDeps> {
  return {
    platform: options.platform ?? process.platform,
    env: options.env ?? process.env,
    run: options.run ?? runProgram,
  };
}

/**
 * Creates the data folder private when it does not exist; reports who else can change an existing
 * one. Never changes the permissions of a folder RelayDesk did not create: that is the admin's call.
 */
export async function prepareDataFolder(
  dir: string,
  options: DataFolderDeps = {},
): Promise<DataFolderReport> {
  const deps = withDefaults(options);
  const created = !(await exists(dir));
  if (created) await mkdir(dir, { recursive: true, mode: 0o700 });
  return inspect(dir, created, deps);
}

/** Who else can change the data folder; null when it does not exist yet (`serve` creates it private). */
export async function inspectDataFolder(
  dir: string,
  options: DataFolderDeps = {},
): Promise<DataFolderReport | null> {
  if (!(await exists(dir))) return null;
  return inspect(dir, false, withDefaults(options));
}

async function inspect(
  dir: string,
  created: boolean,
  deps: Required<DataFolderDeps>,
): Promise<DataFolderReport> {
  if (deps.platform !== 'win32') {
    return { dir, created, otherWriters: await posixWriters(dir), unknown: null, fix: posixFix(dir) };
  }
  let sid: string;
  try {
    sid = await accountSid(deps);
  } catch (error) {
    return {
      dir,
      created,
      otherWriters: [],
      unknown: (error as Error).message,
      fix: windowsFix(dir, '<your SID>'),
    };
  }
  const fix = windowsFix(dir, sid);
  try {
    if (created) await deps.run(systemProgram(deps.env, 'icacls.exe'), privateAclArgs(dir, sid));
    return {
      dir,
      created,
      otherWriters: otherWritersOf(await readWindowsAcl(dir, deps), sid),
      unknown: null,
      fix,
    };
  } catch (error) {
    return { dir, created, otherWriters: [], unknown: (error as Error).message, fix };
  }
}

/** One line for `serve` and `check`; null when the folder is private. */
export function describeDataFolder(report: DataFolderReport): string | null {
  if (report.unknown) {
    return `Could not check who can change the data folder ${report.dir}: ${report.unknown}.`;
  }
  if (report.otherWriters.length === 0) return null;
  return (
    `The data folder ${report.dir} can be changed by ${report.otherWriters.join(', ')}: they could alter or ` +
    `replace queued mail, the admin token and the LAN TLS key. Make it private: ${report.fix}`
  );
}
