// `npm run dist`: electron-builder, with code signing taken from the environment of the build
// machine, so that no certificate, password or Apple ID is ever written in the repository.
// - Windows: a certificate file (WIN_CSC_LINK or CSC_LINK, password in WIN_CSC_KEY_PASSWORD or
//   CSC_KEY_PASSWORD), read by electron-builder itself; or Azure Trusted Signing when
//   RELAYDESK_AZURE_SIGN_ENDPOINT, _ACCOUNT, _PROFILE and _PUBLISHER are set (credentials in
//   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, as Microsoft's tooling reads them).
// - macOS: a Developer ID certificate (CSC_LINK/CSC_NAME, or the keychain), notarized when
//   APPLE_ID + APPLE_APP_SPECIFIC_PASSWORD + APPLE_TEAM_ID (or APPLE_API_KEY, _KEY_ID, _ISSUER) are
//   set. Without a certificate the app is signed ad hoc: Apple Silicon refuses to open an unsigned
//   app ("is damaged"), while an ad-hoc signed one opens after the user allows it.
// Updates: RELAYDESK_UPDATE_URL (a folder served over HTTPS holding what `npm run dist` made) turns
// on the app's updater, through electron-builder's generic provider; without it, updates are off.
// Arguments after `--` go to electron-builder (`npm run dist -- --win --x64`).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function signingArgs(env) {
  const args = [];
  const macCertificate = env.CSC_LINK || env.CSC_NAME || env.CSC_IDENTITY_AUTO_DISCOVERY === 'true';
  if (!macCertificate) args.push('-c.mac.identity=-');
  const azure = ['ENDPOINT', 'ACCOUNT', 'PROFILE', 'PUBLISHER'].map(
    (key) => env[`RELAYDESK_AZURE_SIGN_${key}`],
  );
  if (azure.every(Boolean)) {
    const [endpoint, account, profile, publisher] = azure;
    args.push(
      `-c.win.azureSignOptions.endpoint=${endpoint}`,
      `-c.win.azureSignOptions.codeSigningAccountName=${account}`,
      `-c.win.azureSignOptions.certificateProfileName=${profile}`,
      `-c.win.azureSignOptions.publisherName=${publisher}`,
    );
  } else if (azure.some(Boolean)) {
    throw new Error(
      'Azure Trusted Signing needs all of RELAYDESK_AZURE_SIGN_ENDPOINT, _ACCOUNT, _PROFILE and _PUBLISHER',
    );
  }
  if (env.RELAYDESK_UPDATE_URL) {
    if (!env.RELAYDESK_UPDATE_URL.startsWith('https://'))
      throw new Error('RELAYDESK_UPDATE_URL must be an https:// address');
    args.push('-c.publish.provider=generic', `-c.publish.url=${env.RELAYDESK_UPDATE_URL}`);
  }
  return args;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const builder = fileURLToPath(new URL('../node_modules/electron-builder/cli.js', import.meta.url));
  const args = [builder, '--publish', 'never', ...signingArgs(process.env), ...process.argv.slice(2)];
  const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
