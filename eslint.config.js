import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The layers of electron/, lowest first (README, "What is where"). A folder imports its own layer and
 * the layers below it, never one above, so a change to the app or the shell cannot break the engine,
 * and config stays the ground floor every other part stands on:
 *
 *   platform  file operations as Windows has them, nothing of RelayDesk
 *   config    the config's schema, validation, presets, load/save
 *   secrets   the OS keychain behind a small interface
 *   relay     the engine: SMTP in and out, spool and queue, delivery, diagnosis
 *   shared    the IPC contract; the renderer bundles it, so types only from below, and no Node module
 *   app       the app's controller around the engine, plain Node
 *   shells    main/ and preload/ (Electron), cli/, admin/ and service/ (headless)
 *
 * Only main/ and preload/ may import `electron` (and electron-log/main, electron-updater, which run only
 * inside it); preload/ imports only the contract besides.
 */
const ENGINE_AND_BELOW = ['platform', 'config', 'secrets', 'relay'];
const ALL = [...ENGINE_AND_BELOW, 'shared', 'app', 'admin', 'cli', 'service', 'main', 'preload'];
const ALLOWED = {
  platform: [],
  config: ['platform'],
  secrets: ['platform', 'config'],
  relay: ENGINE_AND_BELOW,
  app: [...ENGINE_AND_BELOW, 'shared'],
  admin: [...ENGINE_AND_BELOW, 'shared', 'app', 'cli', 'service'],
  cli: [...ENGINE_AND_BELOW, 'shared', 'app', 'admin', 'service'],
  service: [...ENGINE_AND_BELOW, 'shared', 'app', 'admin', 'cli'],
  // main reads service/'s definitions to find and drive a relay installed as a service, and runs cli/
  // itself when the packaged app is started as `RelayDesk --cli ...` (its RunAsNode fuse is off).
  main: [...ENGINE_AND_BELOW, 'shared', 'app', 'service', 'cli'],
  preload: ['shared'],
};
/** Electron, and the packages that run only inside it. */
const NO_ELECTRON = ['electron', 'electron-log/main', 'electron-updater'].map((name) => ({
  name,
  message: 'Only electron/main/ and electron/preload/ import Electron and what runs only inside it.',
}));

/** A relative import of one of `folders` from a file one folder below electron/ (or deeper). */
function folderImport(folders) {
  return `^(\\.\\./)+(${folders.join('|')})/`;
}

function layerRule(folder) {
  const forbidden = ALL.filter((other) => other !== folder && !ALLOWED[folder].includes(other));
  return {
    files: [`electron/${folder}/**`],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: folder === 'main' || folder === 'preload' ? [] : NO_ELECTRON,
          patterns: forbidden.length
            ? [
                {
                  regex: folderImport(forbidden),
                  message: `electron/${folder}/ may import only ${ALLOWED[folder].join(', ') || 'Node and packages'} of electron/ (the layers in eslint.config.js).`,
                },
              ]
            : [],
        },
      ],
    },
  };
}

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
  ...Object.keys(ALLOWED).map(layerRule),
  {
    files: ['electron/shared/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: NO_ELECTRON,
          patterns: [
            {
              regex: '^\\.\\./',
              allowTypeImports: true,
              message: 'The IPC contract imports only types from the layers below: the renderer bundles it.',
            },
            { regex: '^node:', message: 'The IPC contract runs in the renderer too: no Node module.' },
          ],
        },
      ],
    },
  },
  {
    // The window talks to the relay through the contract: values from electron/shared/ only, types
    // from the config and the engine.
    files: ['renderer/src/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: NO_ELECTRON,
          patterns: [
            {
              regex: '^(\\.\\./)+electron/(?!shared/)',
              allowTypeImports: true,
              message: 'The window imports values only from electron/shared/ (the IPC contract).',
            },
          ],
        },
      ],
    },
  },
);
