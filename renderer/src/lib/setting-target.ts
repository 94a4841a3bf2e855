/**
 * How one part of the window sends the admin to a setting: advice, a warning or a banner names the
 * setting by its config path ("upstream.password", "allowedClients"), the Settings page shows it,
 * scrolls it into view and puts the focus in it. Every setting's control carries the element id made
 * here, so a path is the only thing a caller needs to know.
 */
export function settingElementId(path: string): string {
  return `field-${path.replace(/[^A-Za-z0-9]/g, '-')}`;
}
