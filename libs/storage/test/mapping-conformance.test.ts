// The shared conformance suite (filestorage spec §16 checklist, ZODB IStorage semantics) run against MappingStorage.
import { MappingStorage } from '../src/index.ts';
import { runConformanceSuite } from '../src/testing/index.ts';

runConformanceSuite('MappingStorage', {
  create: async () => new MappingStorage(),
  createReadOnly: async () => new MappingStorage({ readOnly: true }),
  // an in-memory storage has no second connection: the "second client" is the same object
  connect: async (first) => first,
}, { blobs: false });
