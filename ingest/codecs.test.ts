import { describe, expect, it } from 'vitest';
import { lz4, snappy, zstd } from './codecs.ts';
import { registeredCodec } from './kafka.ts';

const event = Buffer.from(
  '{"event_id":"fx-1","type":"activity","timestamp":"2025-01-02T10:00:00Z","user_id":"u1","team_id":"t1","service":"billing"}',
);

// The same event compressed by other implementations: the zstd and lz4 command-line tools (zstd from a pipe,
// so the frame has no content size, as streaming producers write it) and snappyjs (raw snappy).
const FOREIGN = {
  zstd: '28b52ffd04581d03005206151990a73a68616c9396819cdc4741f6be38233c74848ff9fa0725091b9aaea503a353e93bd22d4b891ce91017077efcf107806ece4d818e8c36585a974cd7c5c9ead355c9e8349275f1318782d104156ccb97460404002008999903ef35c980cfffa52127',
  lz4: '04224d186440a771000000f0147b226576656e745f6964223a2266782d31222c2274797065223a2261637469766974791200f00b696d657374616d70223a22323032352d30312d30325431303a300300825a222c22757365724600117544003265616d0f0010740f006073657276696356009062696c6c696e67227d00000000760e0513',
  snappy:
    '7af05c7b226576656e745f6964223a2266782d31222c2274797065223a226163746976697479222c2274696d657374616d70223a22323032352d30312d30325431303a30303a30305a222c22757365725f6964223a227531222c227465616d5f05555c7431222c2273657276696365223a2262696c6c696e67227d',
} as const;

const codecs = { snappy, lz4, zstd } as const;
const names = ['snappy', 'lz4', 'zstd'] as const;

/** Xerial framing (the Java client's snappy): a 16-byte header, then length-prefixed raw snappy blocks. */
function xerial(blocks: readonly Buffer[]): Buffer {
  const header = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
  return Buffer.concat([
    header,
    ...blocks.flatMap((b) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return [len, b];
    }),
  ]);
}

describe('Kafka codecs', () => {
  const big = Buffer.from(Array.from({ length: 5_000 }, (_, i) => `${event.toString()}#${i}\n`).join(''));

  for (const name of names) {
    it(`${name}: compresses and decompresses, directly and as registered with kafkajs`, async () => {
      const direct = codecs[name];
      const registered = registeredCodec(name);
      for (const data of [event, big, Buffer.alloc(0)]) {
        const packed = await registered.compress(data);
        if (data.length > 1000) expect(packed.length).toBeLessThan(data.length / 2);
        expect((await direct.decompress(packed)).equals(data)).toBe(true);
        expect((await registered.decompress(await direct.compress(data))).equals(data)).toBe(true);
      }
    });

    it(`${name}: reads what another implementation wrote`, async () => {
      const out = await registeredCodec(name).decompress(Buffer.from(FOREIGN[name], 'hex'));
      expect(out.equals(event)).toBe(true);
    });
  }

  it('snappy: reads the xerial framing of the Java client, in several blocks', async () => {
    const halves = [big.subarray(0, 70_000), big.subarray(70_000)];
    const framed = xerial(await Promise.all(halves.map((h) => snappy.compress(h))));
    expect((await registeredCodec('snappy').decompress(framed)).equals(big)).toBe(true);
    await expect(snappy.decompress(framed.subarray(0, framed.length - 10))).rejects.toThrow(/truncated/);
  });

  it('garbage is an error, not a wrong answer', async () => {
    for (const name of names) {
      await expect(registeredCodec(name).decompress(Buffer.from('not compressed at all'))).rejects.toThrow();
    }
  });
});
