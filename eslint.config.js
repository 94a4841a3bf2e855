import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'out/', 'renderer/dist/', 'test-artifacts/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Only main/ and preload/ may touch Electron: the engine, config, secrets, the app's plain-Node
    // controller, the IPC contract, the CLI, the admin server and the service definitions run
    // without it (and are tested without it).
    files: [
      'electron/relay/**',
      'electron/config/**',
      'electron/secrets/**',
      'electron/cli/**',
      'electron/admin/**',
      'electron/app/**',
      'electron/shared/**',
      'electron/service/**',
      'renderer/src/**',
    ],
    rules: { 'no-restricted-imports': ['error', { paths: ['electron'] }] },
  },
);
