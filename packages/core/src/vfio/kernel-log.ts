/** One line a kernel subsystem logged (dev_warn, WARN_ON, pr_err ...). */
export interface KernelMessage {
  readonly level: 'warn' | 'err' | 'info';
  /** The device the message is about (dev_* helpers), or null. */
  readonly device: string | null;
  readonly text: string;
}

/**
 * The messages one subsystem printed, oldest first: what a user would read
 * in dmesg, kept so tests and tools can see driver bugs and refusals the
 * syscalls do not report.
 */
export class KernelLog {
  readonly #messages: KernelMessage[] = [];

  get messages(): readonly KernelMessage[] {
    return this.#messages;
  }

  warn(device: string | null, text: string): void {
    this.#messages.push({ level: 'warn', device, text });
  }

  err(device: string | null, text: string): void {
    this.#messages.push({ level: 'err', device, text });
  }

  info(device: string | null, text: string): void {
    this.#messages.push({ level: 'info', device, text });
  }
}
