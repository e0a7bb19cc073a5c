/**
 * @zeo-ts/zrs — ZRS replication (zrs spec).
 *
 *   const primary = new Primary(fileStorage, { host: '127.0.0.1', port: 0 }, { ackQuorum: 1 });
 *   await primary.listening;
 *   const secondary = new Secondary(otherFileStorage, { host: '127.0.0.1', port: primary.port });
 *
 * Codecs (pure): framing.ts (sized messages), messages.ts (T/S/B/C pickles), checksum.ts,
 * native.ts (our protobuf channel). fsiterator.ts reads the primary's data file.
 * config.ts registers `%import zc.zrs` (<zrs>, legacy <primary>/<secondary>) and opens them.
 * nagios.ts is the zrs-nagios check.
 */
export { MessageTooLarge, SizedMessageDecoder, encodeSized, sizePrefix } from './framing.ts';
export { ProtocolError, decodeMessage, encodeB, encodeC, encodeS, encodeT, extensionBytes, extensionDict, type ZrsMessage, type TMessage, type SMessage, type BMessage, type CMessage } from './messages.ts';
export { RunningChecksum } from './checksum.ts';
export { BLOB_BLOCK, BLOB_FRAME_TAG, blobBlocks, blobToSend, streamBlob, blobStorageOf, removeStaleIncoming, IncomingBlob, NativeBlobReceiver, sendNativeBlob, isBlobFrame, encodeBlobBegin, blobChunkHeader, encodeBlobEnd, decodeBlobFrame, BlobFrameError, BlobSendError, type BlobFrame, type BlobToSend } from './blobs.ts';
export { NATIVE_PROTOCOL, encodeFrame, decodeFrame, encodeSizedAck, txnDigest, NativeProtocolError, encodeRawFrame, decodeRawFrame, rawDigest, type NativeFrame, type NativeTxn, type NativeRecord, type RawFrame } from './native.ts';
export { RawSource, RawReceiver, produceRaw, rawHello, rawAgreed, isRawPayload, type RawSegment, type RawSourceOptions, type RawProducerContext, type RawReceiverOptions } from './raw.ts';
export { FileIterator, TidTooHigh, IteratorError, ScanAborted, type ReplTransaction, type ReplRecord, type FileIteratorOptions } from './fsiterator.ts';
export { Primary, DivergedError, asFileStorage, pyBytesRepr, type PrimaryOptions } from './primary.ts';
export { Secondary, type SecondaryOptions, type SecondaryState, type ReplicaTarget } from './secondary.ts';
export { parseAddress, addressRepr, addressText, sameAddress, listenArgs, connectArgs, type ZrsAddress } from './address.ts';
export { registerZrsConfig, openZrs, openStorageSection, toZrsAddress, zrsType, legacyPrimaryType, legacySecondaryType, type OpenOptions } from './config.ts';
export { nagiosMain, evaluate as nagiosEvaluate, ruokTimes, parseNagiosArgs, NAGIOS_USAGE, NagiosConnectError, type NagiosOptions } from './nagios.ts';
