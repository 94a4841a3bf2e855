// Draws RelayDesk's app icon and its four tray icons in build/, with no image library: shapes are
// tested per pixel (4x4 supersampled) and written with zlib. Run `node build/make-icons.mjs` after
// changing a shape; the files are committed. Each tray state differs in shape, not only in colour,
// so it reads for colour-blind users and on monochrome taskbars. Per OS, as each draws its tray:
// - Windows: one .ico per state holding 16, 20, 24 and 32 px (100 %, 125 %, 150 %, 200 % scaling);
// - macOS: template images (black and alpha only, `...Template.png` and `@2x`), which the menu bar
//   tints for light and dark mode;
// - Linux: PNGs at 1x, 1.25x, 1.5x, 2x and 3x (Electron picks the `@<scale>x` file for the display).
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function png(size, rgba) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y += 1) rgba.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Distance from (x, y) to the segment a-b, in unit coordinates. */
function segment(x, y, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}

const strokes = (lines, width) => (x, y) => lines.some(([a, b]) => segment(x, y, a, b) <= width / 2);

const GLYPHS = {
  envelope: strokes(
    [
      [
        [0.27, 0.34],
        [0.73, 0.34],
      ],
      [
        [0.73, 0.34],
        [0.73, 0.66],
      ],
      [
        [0.73, 0.66],
        [0.27, 0.66],
      ],
      [
        [0.27, 0.66],
        [0.27, 0.34],
      ],
      [
        [0.27, 0.34],
        [0.5, 0.52],
      ],
      [
        [0.5, 0.52],
        [0.73, 0.34],
      ],
    ],
    0.075,
  ),
  exclamation: (x, y) =>
    segment(x, y, [0.5, 0.26], [0.5, 0.58]) <= 0.06 || Math.hypot(x - 0.5, y - 0.73) <= 0.07,
  cross: strokes(
    [
      [
        [0.33, 0.33],
        [0.67, 0.67],
      ],
      [
        [0.67, 0.33],
        [0.33, 0.67],
      ],
    ],
    0.13,
  ),
  pause: strokes(
    [
      [
        [0.39, 0.3],
        [0.39, 0.7],
      ],
      [
        [0.61, 0.3],
        [0.61, 0.7],
      ],
    ],
    0.13,
  ),
};

/** A template image: the disc in black, the glyph cut out of it, so only the shape carries meaning. */
function drawTemplate(size, glyph) {
  return draw(size, [0, 0, 0], glyph, { cutOut: true });
}

/** An ICO file whose entries are PNG images (Windows Vista and later read them). */
function ico(images) {
  const header = Buffer.alloc(6);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(1, 2); // icon
  header.writeUInt16LE(images.length, 4);
  const entries = [];
  let offset = 6 + 16 * images.length;
  for (const { size, data } of images) {
    const entry = Buffer.alloc(16);
    entry.writeUInt8(size >= 256 ? 0 : size, 0);
    entry.writeUInt8(size >= 256 ? 0 : size, 1);
    entry.writeUInt16LE(1, 4); // colour planes
    entry.writeUInt16LE(32, 6); // bits per pixel
    entry.writeUInt32LE(data.length, 8);
    entry.writeUInt32LE(offset, 12);
    entries.push(entry);
    offset += data.length;
  }
  return Buffer.concat([header, ...entries, ...images.map((image) => image.data)]);
}

function draw(size, [r, g, b], glyph, { cutOut = false } = {}) {
  const rgba = Buffer.alloc(size * size * 4);
  const samples = 4;
  for (let py = 0; py < size; py += 1) {
    for (let px = 0; px < size; px += 1) {
      let disc = 0;
      let mark = 0;
      for (let sy = 0; sy < samples; sy += 1) {
        for (let sx = 0; sx < samples; sx += 1) {
          const x = (px + (sx + 0.5) / samples) / size;
          const y = (py + (sy + 0.5) / samples) / size;
          if (Math.hypot(x - 0.5, y - 0.5) <= 0.48) {
            disc += 1;
            if (GLYPHS[glyph](x, y)) mark += 1;
          }
        }
      }
      const total = samples * samples;
      const white = mark / Math.max(disc, 1);
      const offset = (py * size + px) * 4;
      if (cutOut) {
        rgba[offset + 3] = Math.round((255 * (disc - mark)) / total);
        continue;
      }
      rgba[offset] = Math.round(r + (255 - r) * white);
      rgba[offset + 1] = Math.round(g + (255 - g) * white);
      rgba[offset + 2] = Math.round(b + (255 - b) * white);
      rgba[offset + 3] = Math.round((255 * disc) / total);
    }
  }
  return png(size, rgba);
}

const TRAY = {
  ok: { color: [0x1f, 0x8f, 0x4e], glyph: 'envelope' },
  attention: { color: [0xc7, 0x8a, 0x00], glyph: 'exclamation' },
  error: { color: [0xc6, 0x28, 0x28], glyph: 'cross' },
  paused: { color: [0x6b, 0x73, 0x80], glyph: 'pause' },
};

const here = new URL('./', import.meta.url);
const SCALES = { '': 16, '@1.25x': 20, '@1.5x': 24, '@2x': 32, '@3x': 48 };
for (const [state, { color, glyph }] of Object.entries(TRAY)) {
  for (const [suffix, size] of Object.entries(SCALES))
    writeFileSync(new URL(`tray/tray-${state}${suffix}.png`, here), draw(size, color, glyph));
  const icoSizes = [16, 20, 24, 32];
  writeFileSync(
    new URL(`tray/tray-${state}.ico`, here),
    ico(icoSizes.map((size) => ({ size, data: draw(size, color, glyph) }))),
  );
  writeFileSync(new URL(`tray/tray-${state}Template.png`, here), drawTemplate(16, glyph));
  writeFileSync(new URL(`tray/tray-${state}Template@2x.png`, here), drawTemplate(32, glyph));
}
writeFileSync(new URL('icon.png', here), draw(512, [0x0b, 0x5c, 0xad], 'envelope'));
