/**
 * Finds where a config file stops being valid JSON. JSON.parse's own messages name only an offset,
 * and on some inputs quote a piece of the file, which may be a secret pasted in by mistake; this
 * scanner gives a line and column and a message of its own.
 */

export interface JsonSyntaxError {
  /** 1-based, as editors count. */
  line: number;
  column: number;
  expected: string;
}

/** Deeper than any config file; stops a hostile file from exhausting the stack. */
const MAX_DEPTH = 256;

class ScanError extends Error {
  constructor(
    readonly offset: number,
    readonly expected: string,
  ) {
    super(expected);
  }
}

class Scanner {
  private offset = 0;

  constructor(private readonly text: string) {}

  document(): void {
    this.skipWhitespace();
    if (this.offset === this.text.length) this.fail('a JSON object, but the file is empty');
    this.value(0);
    this.skipWhitespace();
    if (this.offset < this.text.length) this.fail('the end of the file after the last } or ]');
  }

  private fail(expected: string): never {
    throw new ScanError(this.offset, expected);
  }

  private peek(): string | undefined {
    return this.text[this.offset];
  }

  private skipWhitespace(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === '\n' || this.peek() === '\r') {
      this.offset++;
    }
  }

  private value(depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`no more than ${MAX_DEPTH} levels of nesting`);
    const char = this.peek();
    if (char === '{') return this.object(depth);
    if (char === '[') return this.array(depth);
    if (char === '"') return this.string();
    if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) return this.number();
    for (const literal of ['true', 'false', 'null']) {
      if (char === literal[0]) return this.literal(literal);
    }
    if (char === undefined) this.fail('a value, but the file ends');
    if (char === "'") this.fail('a value; strings take "double quotes" in JSON, not single quotes');
    if (char === '/') this.fail('a value; JSON does not allow comments');
    this.fail('a value: a "string", a number, true, false, null, { or [');
  }

  private object(depth: number): void {
    this.entries('}', 'setting', () => {
      if (this.peek() === "'")
        this.fail('a setting name in "double quotes"; JSON does not accept single quotes');
      if (this.peek() !== '"') this.fail('a setting name in "double quotes"');
      this.string();
      this.skipWhitespace();
      if (this.peek() !== ':') this.fail("':' after the setting name");
      this.offset++;
      this.skipWhitespace();
      this.value(depth + 1);
    });
  }

  private array(depth: number): void {
    this.entries(']', 'value', () => this.value(depth + 1));
  }

  /** From `{` or `[` to `close`: entries separated by commas, and none after the last comma. */
  private entries(close: '}' | ']', entryName: 'setting' | 'value', entry: () => void): void {
    this.offset++;
    this.skipWhitespace();
    if (this.peek() === close) {
      this.offset++;
      return;
    }
    for (;;) {
      if (this.peek() === close)
        this.fail(`another ${entryName} after the comma (remove the comma before ${close})`);
      entry();
      this.skipWhitespace();
      if (this.peek() === close) {
        this.offset++;
        return;
      }
      if (this.peek() !== ',') this.fail(`',' or '${close}' after the value`);
      this.offset++;
      this.skipWhitespace();
    }
  }

  private string(): void {
    this.offset++;
    for (;;) {
      const char = this.peek();
      if (char === undefined) this.fail('a closing " before the end of the file');
      if (char === '"') {
        this.offset++;
        return;
      }
      if (char < ' ') this.fail('a closing " before the end of the line');
      if (char === '\\') {
        this.offset++;
        const escaped = this.peek();
        if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) {
          this.offset++;
        } else if (
          escaped === 'u' &&
          /^[0-9A-Fa-f]{4}$/.test(this.text.slice(this.offset + 1, this.offset + 5))
        ) {
          this.offset += 5;
        } else {
          // Windows paths are the usual cause: C:\certs must be written C:\\certs in JSON.
          this.fail('a valid escape after \\ (write a backslash as \\\\)');
        }
      } else {
        this.offset++;
      }
    }
  }

  private number(): void {
    const pattern = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    pattern.lastIndex = this.offset;
    const match = pattern.exec(this.text);
    if (!match) this.fail('a number');
    this.offset += match[0].length;
  }

  private literal(word: string): void {
    if (!this.text.startsWith(word, this.offset)) this.fail(word);
    this.offset += word.length;
  }
}

/** Where `text` first breaks the JSON grammar (RFC 8259), or null when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  try {
    new Scanner(text).document();
    return null;
  } catch (error) {
    if (!(error instanceof ScanError)) throw error;
    const before = text.slice(0, error.offset);
    const lineStart = before.lastIndexOf('\n') + 1;
    return {
      line: before.split('\n').length,
      column: error.offset - lineStart + 1,
      expected: error.expected,
    };
  }
}
