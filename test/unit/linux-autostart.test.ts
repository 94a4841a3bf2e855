/**
 * Start at login on Linux: the XDG autostart entry on a real disk, and the quoting of its Exec line
 * (Desktop Entry Specification), checked by GLib itself: `gio launch` starts the entry as a GNOME
 * session would, and a recorder script says what it was given.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  autostartFile,
  autostartLocation,
  isAutostartEnabled,
  quoteExecArgument,
  setAutostart,
} from '../../electron/main/linux-autostart.ts';

const run = promisify(execFile);
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function location() {
  const dir = await mkdtemp(join(tmpdir(), 'relaydesk-xdg-'));
  dirs.push(dir);
  return autostartLocation({ XDG_CONFIG_HOME: join(dir, 'config') });
}

/** GLib's `gio launch`: starts a desktop entry the way a GNOME session starts an autostart entry. */
const gio = ['/usr/bin/gio', '/bin/gio'].find((path) => existsSync(path));

describe('XDG autostart entry', () => {
  it('is written with the command and --hidden, read back as on, and removed when switched off', async () => {
    const where = await location();
    expect(isAutostartEnabled(where)).toBe(false);
    const command = ['/home/office user/Apps/RelayDesk-1.0.0.AppImage', '--hidden'];
    setAutostart(where, true, command);

    const text = await readFile(autostartFile(where), 'utf8');
    expect(autostartFile(where)).toBe(join(where.configHome, 'autostart', 'relaydesk.desktop'));
    expect(text.split('\n').slice(0, 3)).toEqual(['[Desktop Entry]', 'Type=Application', 'Name=RelayDesk']);
    expect(text).toContain('\nExec="/home/office user/Apps/RelayDesk-1.0.0.AppImage" --hidden\n');
    expect(isAutostartEnabled(where)).toBe(true);

    setAutostart(where, false, command);
    expect(isAutostartEnabled(where)).toBe(false);
    await expect(readFile(autostartFile(where))).rejects.toThrow(/ENOENT/);
    // Switching off what is already off is not an error.
    setAutostart(where, false, command);
  });

  it('counts an entry the desktop switched off (Hidden=true or GNOME’s switch) as off', async () => {
    const where = await location();
    setAutostart(where, true, ['/opt/RelayDesk/relaydesk', '--hidden']);
    const text = await readFile(autostartFile(where), 'utf8');
    await writeFile(autostartFile(where), `${text}Hidden=true\n`);
    expect(isAutostartEnabled(where)).toBe(false);
    await writeFile(
      autostartFile(where),
      text.replace('X-GNOME-Autostart-enabled=true', 'X-GNOME-Autostart-enabled=false'),
    );
    expect(isAutostartEnabled(where)).toBe(false);
  });

  it.skipIf(!gio)(
    'quotes the command so that the desktop session starts exactly it (GLib parses the entry)',
    async () => {
      const where = await location();
      // A program in a folder with a space, given the awkward arguments an install path could hold.
      const folder = join(where.configHome, '..', 'My Apps');
      const recorder = join(folder, 'record.sh');
      const recorded = join(folder, 'argv');
      await mkdir(folder, { recursive: true });
      await writeFile(recorder, `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > '${recorded}'\n`, {
        mode: 0o755,
      });
      const args = [
        '/home/ann/Relay$Desk "v1" `x` back\\slash 100%.AppImage',
        'a  b',
        'tab\there',
        '--hidden',
        '',
      ];
      setAutostart(where, true, [recorder, ...args]);

      await run(gio!, ['launch', autostartFile(where)]);
      let argv: string | null = null;
      for (let i = 0; i < 100 && argv === null; i += 1) {
        argv = await readFile(recorded, 'latin1').catch(() => null);
        if (argv === null) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(argv?.split('\0').slice(0, -1)).toEqual(args);
      expect(quoteExecArgument('/opt/RelayDesk/relaydesk')).toBe('/opt/RelayDesk/relaydesk');
    },
  );

  it('uses ~/.config when XDG_CONFIG_HOME is unset or not absolute, as the spec says', () => {
    expect(autostartLocation({}).configHome).toBe(join(homedir(), '.config'));
    expect(autostartLocation({ XDG_CONFIG_HOME: 'relative/dir' }).configHome).toBe(
      join(homedir(), '.config'),
    );
    expect(autostartLocation({ XDG_CONFIG_HOME: '/srv/cfg' }).configHome).toBe('/srv/cfg');
  });
});
