/**
 * The unit tests that cannot pass under Node.js for Windows in Wine, each with the reason, shown
 * beside the test in the output (.ci/windows-lane.sh). Everything else runs. The reporter
 * (skip-reporter.ts) fails the lane for a skip that has no reason here and for an entry here that
 * matches no test, so this list stays exactly what is skipped.
 */

export interface WineSkip {
  /** `file > suite > test` as vitest names it, or a file or suite: every test in it. */
  test: string;
  reason: string;
}

/**
 * libuv applies setKeepAlive(true, delay) at connect with TCP_KEEPALIVE, which Wine 8 refuses, and
 * the connect fails with `UNKNOWN` (net.connect without keep-alive and http.get work). undici, the
 * fetch of Node.js, always asks for keep-alive, so every fetch on Wine fails: the token endpoint and
 * Graph clients cannot reach their emulators. Real Windows is not affected.
 */
const WINE_FETCH = "Wine 8: fetch cannot connect (undici's setKeepAlive before connect fails with UNKNOWN)";

const fetchTests = (file: string, names: string[]): WineSkip[] =>
  names.map((name) => ({ test: `${file} > ${name}`, reason: WINE_FETCH }));

export const wineSkips: WineSkip[] = [
  {
    // Nearly every test here talks to the identity emulator; under Wine the first fetch never settles.
    test: 'test/unit/oauth-delegated.test.ts',
    reason: `${WINE_FETCH}: the delegated sign-in tests talk to the identity emulator`,
  },
  ...fetchTests('test/unit/alerts.test.ts', [
    'sending > POSTs JSON and reports the status; a refusing or absent receiver is an outcome, not a throw',
    'sending > logs alert-failed without the webhook path (it holds the key)',
    'dedupe and rate limit > sends held once while held, and again only after a release',
    'dedupe and rate limit > a failed message: queue id, recipient count and diagnosis, no body; once per message',
    'dedupe and rate limit > a denied device once per IP per day',
    'dedupe and rate limit > queue-age when the oldest waiting message passes the line, once until the queue is young again',
    'dedupe and rate limit > at most 10 an hour, then one "more alerts suppressed", then alerts again the next hour',
  ]),
  ...fetchTests('test/unit/alerts-mail.test.ts', [
    'alert mail to alerts.email > is not attempted while the upstream is held: the webhook says so, and the mail follows once it flows again',
    'alert mail to alerts.email > a refused alert mail is told on the webhook and raises nothing more',
    'sign-in expiring > warns once when the sign-in was not renewed for 76 days, again only after a renewal',
    'daily digest > keeps what it collected and when it is due across a restart (Windows Update at night)',
    'daily digest > collects alerts and sends one summary at digestHour local time, nothing on a quiet day',
  ]),
  ...[
    'systemd unit > passes systemd-analyze verify with spaces, quotes, % and $ in the paths, without a warning',
    'systemd unit > uses a dynamic user and StateDirectory for the default data folder',
    'systemd unit > keeps a data folder under /home reachable: read-only home plus the folder writable',
    'launchd plist > parses with plistlib and carries the arguments, account, logs and stop time exactly',
    'WinSW service XML > is well-formed XML whose arguments node.exe splits back into the exact paths',
    'the packaged app as the program > systemd: ExecStart runs the app binary with --cli, and the unit passes systemd-analyze verify',
    'the packaged app as the program > launchd: ProgramArguments are the app binary, --cli and serve, as plistlib reads them',
    'the packaged app as the program > WinSW: <executable> is RelayDesk.exe and <arguments> split back into --cli serve ...',
  ].map((name) => ({
    test: `test/unit/service-definitions.test.ts > ${name}`,
    reason:
      'checked with Linux tools (systemd-analyze, python3 plistlib and xml.etree) that a Windows process cannot start; the same tests run on Linux in npm test',
  })),
  {
    test: 'test/unit/service-windows.test.ts > the WinSW XML against the winsw.exe node-windows ships > uses only elements, attributes and modes that this winsw.exe reads',
    reason:
      'the XML is read with python3 xml.etree, which a Windows process cannot start; the same test runs on Linux in npm test',
  },
  ...fetchTests('test/unit/oauth-token.test.ts', [
    'createTokenProvider > fetches a token the endpoint accepts for the scope, and serves it from the cache',
    'createTokenProvider > asks for the Graph scope when told to',
    'createTokenProvider > replaces the token once it is within the refresh margin of expiry',
    'createTokenProvider > keeps a token shorter-lived than the margin for half its lifetime',
    'createTokenProvider > fetches a new token on forceRefresh and after invalidate',
    'createTokenProvider > lets concurrent callers share one request',
    'createTokenProvider > reports a wrong client secret as AADSTS7000215 without repeating the secret',
    'createTokenProvider > does not cache a failure: the corrected secret works on the next call',
    'createTokenProvider > reads the client secret again on each request, so a rotated secret needs no restart',
    'createTokenProvider > reports an unknown tenant as AADSTS90002',
    'createTokenProvider > reports an unknown client id as AADSTS700016',
    'createTokenProvider > reports missing admin consent as AADSTS65001',
    'createTokenProvider > reports a scope the app may not ask for as invalid_scope',
    'createTokenProvider > reports a token endpoint that is down as a network failure at the auth stage',
    'createTokenProvider > gives up on a token endpoint that never answers',
  ]),
  ...fetchTests('test/unit/graph-emulator.test.ts', [
    'graph emulator > answers like Graph for unknown, on-premises and out-of-scope mailboxes and oversized requests',
    'graph emulator > takes upload ranges only in order, only without a token, and attaches the file when complete',
  ]),
  ...fetchTests('test/unit/graph-transport.test.ts', [
    'createGraphTransport > sends a small message as MIME through sendMail, and Microsoft accepting it is the response',
    'createGraphTransport > adds envelope-only recipients as Bcc, which the To and Cc recipients cannot see',
    'createGraphTransport > sends only to the envelope when the header names more recipients than it',
    'createGraphTransport > delivers a 20 MB attachment intact through a draft and upload sessions',
    'createGraphTransport > falls back to a draft without attachments when sendMail answers 413 below the expected limit',
    "createGraphTransport > with sendAs 'from' sends through each sender's own mailbox, and through the configured one when there is none",
    'createGraphTransport > keeps a copy out of Sent Items through a draft when saveToSentItems is false',
    'createGraphTransport > turns 429 and 503 into a graph failure with Retry-After, which the table retries after that long',
    'createGraphTransport > reports a mailbox outside the app scope as ErrorAccessDenied, which holds the queue',
    'createGraphTransport > deletes the draft again when sending it fails',
    'createGraphTransport > passes a token endpoint refusal through as the failure, without calling Graph',
    'createGraphTransport > fetches a new token once when Graph answers 401 for an expired one',
    'createGraphTransport > turns an unreachable Graph into a network failure',
    'probeGraphMailbox > checks the token, Mail.Send and Mail.ReadWrite on the mailbox without sending or leaving anything',
    'probeGraphMailbox > names the refusal for a mailbox outside the app scope, and for missing Mail.ReadWrite',
    'probeGraphMailbox > stops at the token when the token endpoint refuses',
    'probeGraphMailbox > reports a token for the wrong resource as Graph refusing it',
  ]),
  {
    test: 'test/unit/lan-tls.test.ts > loadLanTls > generates an RSA certificate for the host name on first run, key readable by the owner only, and reuses it',
    reason:
      'Windows has no POSIX modes (node reports 0o666 for any writable file): the key is protected by the data folder’s ACL there',
  },
  {
    test: 'test/unit/linux-autostart.test.ts',
    reason:
      'Linux only: the XDG autostart entry needs a POSIX XDG_CONFIG_HOME, and GLib’s gio (seen through drive Z:) cannot run',
  },
  {
    test: 'test/unit/electron-app.test.ts > the Electron main process, wired up > offers Start at login on Linux too, as an XDG autostart entry that starts it hidden',
    reason:
      'Linux only: the XDG autostart entry is what the app offers on Linux (on Windows it is Electron’s login item setting)',
  },
  {
    test: 'test/unit/service-admin-group.test.ts > who installs > is found by the uid pkexec passes',
    reason: 'Linux and root only: makes a throwaway account with useradd to stand for the user pkexec names',
  },
  {
    test: 'test/unit/service-admin-group.test.ts > the Linux admin group',
    reason: 'Linux and root only: creates a throwaway group and user with groupadd, useradd and usermod',
  },
  {
    test: 'test/unit/service-elevate.test.ts > Linux: pkexec, or the commands > runs for real: the folder made private, the settings copied, install started with the exact arguments',
    reason: 'Linux and root only: runs the /bin/sh script pkexec would run, and the Linux install behind it',
  },
  {
    test: 'test/unit/service-elevate.test.ts > Linux: pkexec, or the commands > with pkexec: stops the app relay, runs the prompt; a refused prompt starts it again and shows the commands',
    reason: 'Linux only: a /bin/sh script stands for a pkexec whose prompt was refused',
  },
  {
    test: 'test/unit/data-folder.test.ts > POSIX data folder',
    reason:
      'POSIX only: Windows has no mode bits; the Windows data folder is checked through its ACL (icacls)',
  },
];

/** The entry that covers a test (by its vitest full name), if any. */
export function wineSkipFor(fullName: string): WineSkip | undefined {
  return wineSkips.find((skip) => fullName === skip.test || fullName.startsWith(`${skip.test} > `));
}
