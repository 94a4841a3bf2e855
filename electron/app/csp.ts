/**
 * The window's Content Security Policy, sent by the admin web server and by Electron's app:// scheme
 * (renderer/index.html repeats it in a meta tag for any other way of opening the file). Only the
 * window's own scripts, styles and API: no inline code, no eval, no other origin, no framing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
