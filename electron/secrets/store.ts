/** Where RelayDesk keeps the upstream password and the OAuth 2.0 client secret. */
export interface SecretStore {
  /** The secret stored for `account`, or null when there is none. */
  get(account: string): Promise<string | null>;
  set(account: string, secret: string): Promise<void>;
  /** True when a secret was there and is now gone, false when there was none. */
  delete(account: string): Promise<boolean>;
  /** Where the secrets live, for the CLI and the window (`macOS Keychain, service "RelayDesk"`). */
  describe(): string;
}

/** A store that lives in this process only: for tests, and for modules tested without a keychain. */
export function createMemoryStore(): SecretStore {
  const secrets = new Map<string, string>();
  return {
    async get(account) {
      return secrets.get(account) ?? null;
    },
    async set(account, secret) {
      secrets.set(account, secret);
    },
    async delete(account) {
      return secrets.delete(account);
    },
    describe() {
      return 'memory (not persisted)';
    },
  };
}
