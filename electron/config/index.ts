export type * from './types.ts';
export { defaultConfig } from './defaults.ts';
export { applyPreset, PRESET_NAMES, PRESETS, presetFields } from './presets.ts';
export type { PresetDefinition } from './presets.ts';
export { defaultTokenUrl, parseConfig } from './validate.ts';
export type { ParsedConfig } from './validate.ts';
export { defaultConfigPath, defaultDataDir } from './paths.ts';
export { formatProblems, loadConfigFile, saveConfigFile } from './store.ts';
export type { LoadedConfig } from './store.ts';
