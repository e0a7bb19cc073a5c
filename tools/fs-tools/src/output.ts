/**
 * Bounded output for the tools: text is collected up to a limit and then handed to the stream,
 * waiting for 'drain' when the stream is full, so a dump of a huge file never holds more than
 * about one chunk in memory.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

const CHUNK = 64 * 1024;

export interface Out {
  write(s: string): void;
  /** give the collected text to the stream if enough accumulated (call between records) */
  maybeFlush(): Promise<void>;
  flush(): Promise<void>;
}

export class StreamOut implements Out {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly stream: Writable) {}

  write(s: string): void {
    this.parts.push(s);
    this.size += s.length;
  }

  async maybeFlush(): Promise<void> {
    if (this.size >= CHUNK) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.size === 0 && this.parts.length === 0) return;
    const text = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.stream.write(text, 'utf8')) await once(this.stream, 'drain');
  }
}

/** Collects everything in memory (tests, small outputs). */
export class StringOut implements Out {
  text = '';
  write(s: string): void {
    this.text += s;
  }
  async maybeFlush(): Promise<void> {}
  async flush(): Promise<void> {}
}

/** Write `text` to a stream and wait until it is handed to the OS (end of a CLI run). */
export async function writeAll(stream: Writable, text: string): Promise<void> {
  if (!text) return;
  if (!stream.write(text, 'utf8')) await once(stream, 'drain');
}
