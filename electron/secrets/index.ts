export type { SecretStore } from './store.ts';
export { createMemoryStore } from './store.ts';
export {
  CLIENT_SECRET_ENV,
  KeychainUnavailableError,
  PASSWORD_ENV,
  createKeychainStore,
} from './keychain.ts';
export type { ResolvedSecret, SecretKind } from './resolve.ts';
export {
  deleteSecret,
  endpointMismatch,
  resolveSecret,
  secretAccount,
  secretEndpoint,
  secretEnvName,
  storeSecret,
} from './resolve.ts';
export { SecretInputError, readSecretFromStdin } from './prompt.ts';
export { refreshTokenAccount } from './refresh-token.ts';
