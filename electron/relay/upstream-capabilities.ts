// What the upstream announced in its last EHLO, so the LAN side can refuse at the device what the
// upstream would refuse after the device had already heard 250 (RFC 6531 SMTPUTF8, RFC 1870 SIZE).
export interface UpstreamCapabilities {
  /** Whether the upstream offers SMTPUTF8; undefined until it has been reached once. */
  smtpUtf8: boolean | undefined;
  /** The upstream's announced SIZE limit in bytes; undefined when not announced or not yet known. */
  sizeLimit: number | undefined;
}

export interface UpstreamCapabilitiesStore {
  get(): UpstreamCapabilities;
  learn(capabilities: UpstreamCapabilities): void;
}

export function createUpstreamCapabilities(): UpstreamCapabilitiesStore {
  let current: UpstreamCapabilities = { smtpUtf8: undefined, sizeLimit: undefined };
  return {
    get: () => current,
    learn: (capabilities) => {
      current = { ...capabilities };
    },
  };
}
