// The compression codecs Kafka defines beyond gzip (snappy, lz4, zstd), as plain Buffer -> Buffer functions.
// kafkajs decodes only gzip by itself: without these a producer using any other codec stops the consumer
// ("... compression not implemented"). Each library ships prebuilt binaries inside its platform package (no
// install script, no download). ingest/kafka.ts registers them with kafkajs; nothing here knows kafkajs.
import { compress as zstdCompress, decompress as zstdDecompress } from '@mongodb-js/zstd';
import { compressFrame as lz4CompressFrame, decompressFrame as lz4DecompressFrame } from 'lz4-napi';
import { compress as snappyCompress, uncompress as snappyUncompress } from 'snappy';

import type { KafkaCodec } from '../core/config.ts';

export type CodecName = KafkaCodec;

export interface Codec {
  compress(data: Buffer): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

// The Java client (and older librdkafka) frame snappy the way xerial's snappy-java does: a 16-byte header, then
// blocks of a 4-byte big-endian length and one raw snappy block. librdkafka writes raw snappy. Both are read.
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;

function isXerial(data: Buffer): boolean {
  return data.length >= XERIAL_HEADER_BYTES && data.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC);
}

async function snappyBlock(block: Buffer): Promise<Buffer> {
  const out = await snappyUncompress(block, { asBuffer: true });
  return typeof out === 'string' ? Buffer.from(out) : out;
}

export const snappy: Codec = {
  // Raw snappy, as librdkafka writes it: every Kafka client reads it.
  compress: (data) => snappyCompress(data),
  async decompress(data) {
    if (!isXerial(data)) return snappyBlock(data);
    const parts: Buffer[] = [];
    let at = XERIAL_HEADER_BYTES;
    while (at < data.length) {
      if (at + 4 > data.length) throw new Error('snappy: truncated xerial block length');
      const size = data.readUInt32BE(at);
      at += 4;
      if (at + size > data.length) throw new Error('snappy: truncated xerial block');
      parts.push(await snappyBlock(data.subarray(at, at + size)));
      at += size;
    }
    return Buffer.concat(parts);
  },
};

// Kafka's lz4 is the LZ4 frame format (record batches v2 use a correct header checksum).
export const lz4: Codec = {
  compress: (data) => lz4CompressFrame(data),
  decompress: (data) => lz4DecompressFrame(data),
};

// Level 3 is zstd's own default and what librdkafka and the Java client use unless told otherwise.
export const zstd: Codec = {
  compress: (data) => zstdCompress(data, 3),
  decompress: (data) => zstdDecompress(data),
};
