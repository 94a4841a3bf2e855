import type { AsyncEntry, EntryOptions } from '@napi-rs/keyring';
import type { SecretStore } from './store.ts';

export const PASSWORD_ENV = 'RELAYDESK_UPSTREAM_PASSWORD';
export const CLIENT_SECRET_ENV = 'RELAYDESK_CLIENT_SECRET';

/** No OS keychain answered: a Linux server without a D-Bus session or Secret Service, a locked store. */
export class KeychainUnavailableError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(
      `No OS keychain is reachable (${reason}). A Linux server without a desktop session has no Secret ` +
        `Service; set ${PASSWORD_ENV} (upstream password) or ${CLIENT_SECRET_ENV} (OAuth 2.0 client secret) ` +
        'in the environment of the relay instead.',
      options,
    );
    this.name = 'KeychainUnavailableError';
  }
}

/**
 * On Linux, keyring-rs falls back from the Secret Service to the kernel keyring, which forgets every
 * secret at logout or reboot: an unattended relay would lose its password without a word. Pinning the
 * Secret Service turns that into an error that points at the environment variables. Other platforms
 * ignore the option.
 */
const ENTRY_OPTIONS: EntryOptions = { linux: { store: 'secret-service' } };

/**
 * keyring-rs reports "no store" as PlatformFailure (`Platform failure: DBus error: ...`, no session bus
 * or no org.freedesktop.secrets on it) or NoStorageAccess (`Couldn't access platform storage: ...`,
 * locked or refused); napi-rs gives both the code `GenericFailure`, so the message is all there is.
 */
const UNAVAILABLE = /^(Platform failure|Couldn't access platform storage)/;

function platformName(): string {
  switch (process.platform) {
    case 'darwin':
      return 'macOS Keychain';
    case 'win32':
      return 'Windows Credential Manager';
    default:
      return 'Secret Service';
  }
}

type KeyringModule = typeof import('@napi-rs/keyring');

/**
 * The OS keychain (macOS Keychain, Windows Credential Manager, Secret Service on Linux): one entry per
 * upstream account under `service`. The native module loads on first use, so a platform without a
 * prebuilt binary reports KeychainUnavailableError instead of failing at import.
 */
export function createKeychainStore(service = 'RelayDesk'): SecretStore {
  let keyring: Promise<KeyringModule> | null = null;

  async function load(): Promise<KeyringModule> {
    keyring ??= import('@napi-rs/keyring');
    try {
      return await keyring;
    } catch (error) {
      throw new KeychainUnavailableError(`the keychain module does not load: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  async function call<T>(account: string, operation: (entry: AsyncEntry) => Promise<T>): Promise<T> {
    const { AsyncEntry } = await load();
    try {
      // The constructor already connects on Linux, and throws when there is no session bus.
      return await operation(new AsyncEntry(service, account, ENTRY_OPTIONS));
    } catch (error) {
      const message = messageOf(error);
      if (!UNAVAILABLE.test(message)) throw error;
      throw new KeychainUnavailableError(unavailableReason(message), { cause: error });
    }
  }

  return {
    get: (account) => call(account, (target) => target.getPassword()),
    set: (account, secret) => call(account, (target) => target.setPassword(secret)),
    delete: (account) => call(account, (target) => target.deleteCredential()),
    describe: () => `${platformName()}, service "${service}"`,
  };
}

/** libdbus's own words for a missing session bus talk about X11 autolaunch; say what is wrong instead. */
function unavailableReason(message: string): string {
  if (process.platform === 'linux' && !process.env.DBUS_SESSION_BUS_ADDRESS) {
    return 'no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set';
  }
  return message;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
