export type { SecretStore } from './store.ts';
export { createMemoryStore } from './store.ts';
export {
  CLIENT_SECRET_ENV,
  KeychainUnavailableError,
  PASSWORD_ENV,
  createKeychainStore,
} from './keychain.ts';
export { SecretInputError, readSecretFromStdin } from './prompt.ts';
