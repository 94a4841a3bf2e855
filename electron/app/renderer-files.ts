/**
 * The built window's files (renderer/dist), as Electron's app:// scheme and the admin web server
 * both serve them: which file a request path names, never one outside the folder, and its type.
 */
import { extname, join, normalize, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** The file under `rendererDir` that a URL path (`/`, `/assets/x.js`, percent-encoded) names, or null. */
export function rendererFilePath(rendererDir: string, urlPath: string): string | null {
  const relative = urlPath === '/' ? 'index.html' : decodeURIComponent(urlPath.slice(1));
  const file = normalize(join(rendererDir, relative));
  return file.startsWith(normalize(rendererDir + sep)) && !relative.includes('\0') ? file : null;
}

export function rendererContentType(file: string): string {
  return CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
}
