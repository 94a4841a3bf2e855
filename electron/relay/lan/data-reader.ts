/**
 * Reads the DATA phase of an SMTP session. Only `<CR><LF>.<CR><LF>` ends a message: bare
 * `<LF>.<LF>`, `<CR>.<CR>` and `<LF>.<CR><LF>` are message content (RFC 5321 §4.1.1.4; treating them
 * as the end is the SMTP smuggling hole, CVE-2023-51764/51765/51766). Leading dots are unstuffed
 * (RFC 5321 §4.5.2). The final CRLF belongs to the message's last line and is kept.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BYTE = Buffer.from([CR]);

const enum State {
  MidLine,
  AfterCr,
  LineStart,
  LineStartDot,
  LineStartDotCr,
}

export interface DataChunkResult {
  /** Message bytes found in this chunk (unstuffed). */
  body: Buffer[];
  /** True when the terminator was seen. */
  done: boolean;
  /** Bytes after the terminator: the next pipelined commands. */
  rest: Buffer;
}

export class DataReader {
  // DATA<CRLF> has just been read, so the message starts at the beginning of a line.
  private state: State = State.LineStart;
  /** The CR of `.<CR>` arrived at the end of the previous chunk and has not been emitted. */
  private crWithheld = false;

  feed(chunk: Buffer): DataChunkResult {
    const body: Buffer[] = [];
    let spanStart = 0;
    let i = 0;
    const flushSpan = (end: number) => {
      if (end > spanStart) body.push(chunk.subarray(spanStart, end));
    };

    while (i < chunk.length) {
      switch (this.state) {
        case State.MidLine: {
          const cr = chunk.indexOf(CR, i);
          if (cr < 0) {
            i = chunk.length;
          } else {
            i = cr + 1;
            this.state = State.AfterCr;
          }
          break;
        }
        case State.AfterCr:
          if (chunk[i] === LF) {
            i += 1;
            this.state = State.LineStart;
          } else {
            this.state = State.MidLine;
          }
          break;
        case State.LineStart:
          if (chunk[i] === DOT) {
            // The dot is never content: it is either stuffing or the start of the terminator.
            flushSpan(i);
            i += 1;
            spanStart = i;
            this.state = State.LineStartDot;
          } else {
            this.state = State.MidLine;
          }
          break;
        case State.LineStartDot:
          if (chunk[i] === CR) {
            i += 1;
            this.state = State.LineStartDotCr;
          } else {
            this.state = State.MidLine;
          }
          break;
        case State.LineStartDotCr:
          if (chunk[i] === LF) {
            // `.<CR><LF>` at the start of a line: the end. The CR is not content.
            this.crWithheld = false;
            flushSpan(i - 1);
            this.state = State.LineStart;
            return { body, done: true, rest: chunk.subarray(i + 1) };
          }
          if (this.crWithheld) {
            body.push(CR_BYTE);
            this.crWithheld = false;
          }
          this.state = State.AfterCr;
          break;
      }
    }

    if (this.state === State.LineStartDotCr && !this.crWithheld) {
      // Hold back a trailing `.<CR>`'s CR until we know whether an LF follows.
      flushSpan(chunk.length - 1);
      this.crWithheld = true;
    } else {
      flushSpan(chunk.length);
    }
    return { body, done: false, rest: Buffer.alloc(0) };
  }
}
