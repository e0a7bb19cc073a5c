/** The message codecs by encoding letter (pure). */
import type { EncodingLetter } from './handshake.ts';
import type { MessageCodec } from './message.ts';
import { M5Codec } from './m5.ts';
import { Z5Codec } from './z5.ts';

/** A fresh codec for an encoding letter ('M' → M5, 'Z' → Z5), or undefined. */
export function codecFor(letter: EncodingLetter): MessageCodec | undefined {
  if (letter === 'M') return new M5Codec();
  if (letter === 'Z') return new Z5Codec();
  return undefined;
}

/** The encodings implemented. */
export function availableEncodings(): EncodingLetter[] {
  return ['M', 'Z'];
}
