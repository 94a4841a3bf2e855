import type { UpstreamConfig, UpstreamPreset } from './types.ts';

export interface PresetDefinition extends Partial<UpstreamConfig> {
  label: string;
  notes: string;
}

export const PRESETS: Record<UpstreamPreset, PresetDefinition> = {
  microsoft365: {
    label: 'Microsoft 365 (SMTP AUTH)',
    notes:
      'smtp.office365.com:587 with STARTTLS, signing in as one licensed mailbox; a mailbox takes 30 messages ' +
      'a minute, 3 connections and 35 MB per message. SMTP AUTH must be enabled for that mailbox. Microsoft ' +
      'is retiring basic authentication (password) for SMTP AUTH: disabled by default at the end of December ' +
      '2026, final removal date to be announced in the second half of 2027. OAuth 2.0 is recommended.',
    host: 'smtp.office365.com',
    port: 587,
    security: 'starttls',
    auth: 'password',
    messagesPerMinute: 30,
    maxConnections: 3,
    maxMessageBytes: 35 * 1024 * 1024,
  },
  'microsoft365-hve': {
    label: 'Microsoft 365 High Volume Email',
    notes:
      'smtp-hve.office365.com:587 with STARTTLS, signing in as an HVE account (no licence needed, up to 100 ' +
      'per tenant; billed per recipient). Internal recipients only: mail to outside addresses is refused ' +
      'with 550 5.5.105. Basic authentication (password) is accepted here until September 2028; OAuth 2.0 ' +
      'works too.',
    host: 'smtp-hve.office365.com',
    port: 587,
    security: 'starttls',
    auth: 'password',
    maxMessageBytes: 35 * 1024 * 1024,
    maxConnections: 3,
    messagesPerMinute: 30,
  },
  'microsoft365-direct-send': {
    label: 'Microsoft 365 Direct Send',
    notes:
      "Delivers without signing in to the tenant's MX host (<tenant>.mail.protection.outlook.com, shown in " +
      'the Microsoft 365 admin center under Domains), port 25 with STARTTLS. Only recipients inside the ' +
      'tenant are reached, and the tenant can switch Direct Send off (550 5.7.68).',
    // No host: it is the tenant's own MX, which the admin supplies.
    port: 25,
    security: 'starttls',
    auth: 'none',
  },
  google: {
    label: 'Google Workspace / Gmail',
    notes:
      'smtp.gmail.com:587 with STARTTLS and an app password (the account needs 2-Step Verification). ' +
      'Messages up to 25 MB.',
    host: 'smtp.gmail.com',
    port: 587,
    security: 'starttls',
    auth: 'password',
    maxMessageBytes: 25 * 1024 * 1024,
    // Conservative: Google publishes daily limits, not per-minute or connection limits.
    messagesPerMinute: 60,
    maxConnections: 3,
  },
  custom: {
    label: 'Other SMTP server',
    notes: 'Any smart host: set host, port, security and auth yourself.',
  },
};

export const PRESET_NAMES = Object.keys(PRESETS) as UpstreamPreset[];

/** The upstream fields a preset fills in, without its label and notes. */
export function presetFields(preset: UpstreamPreset): Partial<UpstreamConfig> {
  const { label: _label, notes: _notes, ...fields } = PRESETS[preset];
  return fields;
}

/** `upstream` switched to `preset`: the preset's fields replace those in `upstream`, the rest stay. */
export function applyPreset(upstream: UpstreamConfig, preset: UpstreamPreset): UpstreamConfig {
  return { ...upstream, ...presetFields(preset), preset };
}
