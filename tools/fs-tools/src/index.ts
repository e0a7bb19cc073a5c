/**
 * @zeo-ts/fs-tools — FileStorage operator commands (filestorage spec §8.3, §10.5, §11, §12) as
 * npm bins (fstest fsdump fstail fsrefs fsoids fsstats fsanalyze fsrecover repozo fsconvert-fs21), and their library functions.
 * Output is byte-identical to the Python ZODB scripts; see README-style notes in each module.
 */
export { fstest, FormatError, type FstestOptions } from './fstest.ts';
export { fsdump, fsdumpVerbose, type DumpOptions } from './fsdump.ts';
export { fstail } from './fstail.ts';
export { fsrefs, type FsrefsOptions } from './fsrefs.ts';
export { Tracer, parsePyInt, shorten } from './fsoids.ts';
export { fsstats, Histogram } from './fsstats.ts';
export { recover, RecoverWriter, scanForward, type RecoverOptions, type RecoverResult } from './fsrecover.ts';
export { scanIndex, loadCurrent, type ScanResult } from './scan.ts';
export { RawFile, iterateTransactions, iterateRecords, ToolError, fs21Note, type IterTxn, type IterRecord, type IterWarning } from './fsio.ts';
export { StreamOut, StringOut, type Out } from './output.ts';
export { getopt, GetoptError } from './getopt.ts';
export * as pyfmt from './pyfmt.ts';
export { fstestMain, fsdumpMain, fstailMain, fsrefsMain, fsoidsMain, fsstatsMain, fsrecoverMain, fsanalyzeMain, fsconvertFs21Main } from './main.ts';
export { convertFs21, type ConvertOptions, type ConvertProgress, type ConvertResult } from './fsconvert.ts';
export { analyze, writeAnalyzeReport, type AnalyzeReport } from './analyze.ts';
export { doBackup, doRecover, doVerify, findFiles, RepozoError, WouldOverwriteFiles, NoFiles, VerificationFail, type RepozoOptions, type Mode as RepozoMode } from './repozo.ts';
export { repozoMain, parseRepozoArgs } from './repozo-main.ts';
