/** Microsoft Graph as an upstream: the transport for delivery, the probe for `relaydesk check`. */
export { createGraphTransport, type GraphTransportOptions } from './transport.ts';
export { probeGraphMailbox, type GraphProbe, type GraphProbeStep } from './probe.ts';
