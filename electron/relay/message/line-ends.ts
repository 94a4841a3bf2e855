/**
 * Carriage returns where a line end should be, handled the way Postfix handles the same bytes
 * (measured against Postfix 3.7: smtpd strips every CR before the LF, cleanup turns a CR inside a
 * line into a space):
 * - a run of CRs before the LF (`\r\r\n`, what busybox sendmail sends for a file with CRLF lines)
 *   is one line end, so it neither cuts the header block nor adds blank lines to the body;
 * - inside a header field a CR is a space (headers.ts), so it can never start a header line that
 *   sender rewriting and Bcc removal did not see.
 * A bare CR elsewhere in the body is left to the SMTP data encoder, which makes it a line end.
 */

const CR = 0x0d;
const LF = 0x0a;
const CR_CR = Buffer.from('\r\r');
const LONE_CR = Buffer.from('\r');
const EMPTY = Buffer.alloc(0);

/** Streams a body with every run of CRs before an LF cut to one CR. Chunks may be cut anywhere. */
export class CarriageReturnRuns {
  /** CRs at the end of the last chunk: whether an LF follows is only known from the next one. */
  #pending = 0;
  /** Some run was cut: the body upstream differs from the device's bytes. */
  changed = false;

  write(chunk: Buffer): Buffer {
    let leading = 0;
    while (leading < chunk.length && chunk[leading] === CR) leading++;
    // Counted, not copied: a body of nothing but CRs costs no more than any other.
    if (leading === chunk.length) {
      this.#pending += chunk.length;
      return EMPTY;
    }
    let held = EMPTY;
    let from = 0;
    if (this.#pending > 0) {
      const run = this.#pending + leading;
      this.#pending = 0;
      if (chunk[leading] === LF) {
        if (run > 1) this.changed = true;
        held = LONE_CR;
        from = leading;
      } else {
        held = Buffer.alloc(run - leading, CR);
      }
    }
    let end = chunk.length;
    while (chunk[end - 1] === CR) end--;
    this.#pending = chunk.length - end;
    const ready = this.#cutRuns(from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end));
    return held.length === 0 ? ready : Buffer.concat([held, ready]);
  }

  /** `ready` does not end in a CR, so every run in it is followed by a byte of it. */
  #cutRuns(ready: Buffer): Buffer {
    let run = ready.indexOf(CR_CR);
    if (run < 0) return ready;
    const pieces: Buffer[] = [];
    let start = 0;
    while (run >= 0) {
      let after = run;
      while (ready[after] === CR) after++;
      if (ready[after] === LF) {
        pieces.push(ready.subarray(start, run));
        start = after - 1;
        this.changed = true;
      }
      run = ready.indexOf(CR_CR, after);
    }
    pieces.push(ready.subarray(start));
    return Buffer.concat(pieces);
  }

  /** CRs left at the very end (no LF came): they stay, for the encoder to end the line. */
  end(): Buffer {
    const rest = Buffer.alloc(this.#pending, CR);
    this.#pending = 0;
    return rest;
  }
}
