/**
 * The demo's output: section titles, strace-style call lines and notes,
 * collected in order so a test can read what a person would see.
 */
export class Trace {
  readonly lines: string[] = [];
  readonly #echo: ((line: string) => void) | null;

  /** `echo` receives every line as it is made (the demo prints them live). */
  constructor(echo: ((line: string) => void) | null = null) {
    this.#echo = echo;
  }

  line(text: string): void {
    for (const line of text.replace(/\n$/, '').split('\n')) {
      this.lines.push(line);
      this.#echo?.(line);
    }
  }

  section(title: string): void {
    if (this.lines.length > 0) this.line('');
    this.line(`== ${title} ${'='.repeat(Math.max(3, 72 - title.length))}`);
  }

  /** An explanation under the call it belongs to. */
  note(text: string): void {
    this.line(`    # ${text}`);
  }

  /** A block of tool-like output (lspci, a table), indented. */
  block(text: string): void {
    for (const line of text.replace(/\n$/, '').split('\n')) this.line(`  ${line}`);
  }

  get text(): string {
    return this.lines.join('\n') + '\n';
  }
}
