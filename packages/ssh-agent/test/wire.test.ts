import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AgentProtocolError,
  encodeIdentities,
  encodeMessage,
  isFingerprint,
  keyType,
  MAX_MESSAGE_BYTES,
  MessageReader,
  MessageType,
  parseIdentities,
  parseSignRequest,
} from "../src/index.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);

describe("MessageReader", () => {
  it("splits a stream into messages at any chunking", () => {
    const stream = Buffer.concat([
      encodeMessage(MessageType.requestIdentities),
      encodeMessage(MessageType.signRequest, Buffer.from("abc")),
      encodeMessage(MessageType.lock, Buffer.alloc(1000, 7)),
    ]);
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 10 }), (cuts) => {
        const reader = new MessageReader();
        const got = [];
        let at = 0;
        for (const cut of [...cuts.sort((a, b) => a - b), stream.length]) {
          got.push(...reader.push(stream.subarray(at, Math.max(at, cut))));
          at = Math.max(at, cut);
        }
        expect(got.map((m) => [m.type, m.body.length])).toEqual([
          [MessageType.requestIdentities, 0],
          [MessageType.signRequest, 3],
          [MessageType.lock, 1000],
        ]);
        expect(reader.pending).toBe(0);
      }),
      { numRuns: 300 * FUZZ },
    );
  });

  it("refuses an empty or oversized length before buffering it", () => {
    expect(() => new MessageReader().push(Buffer.from([0, 0, 0, 0]))).toThrow(AgentProtocolError);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(MAX_MESSAGE_BYTES + 1, 0);
    expect(() => new MessageReader().push(huge)).toThrow(/at most 262144/);
  });
});

describe("parsers", () => {
  it("round-trip an identities answer", () => {
    const keys = [
      { blob: Buffer.from("\0\0\0\x0bssh-ed25519rest"), comment: Buffer.from("me@host") },
      { blob: Buffer.from("\0\0\0\x07ssh-rsa"), comment: Buffer.alloc(0) },
    ];
    const wire = encodeIdentities(keys);
    const [m] = new MessageReader().push(wire);
    expect(m!.type).toBe(MessageType.identitiesAnswer);
    expect(parseIdentities(m!.body)).toEqual(keys);
    expect(keyType(keys[0]!.blob)).toBe("ssh-ed25519");
    expect(keyType(Buffer.from([0, 0, 0, 200]))).toBe("unknown");
  });

  it("never throw anything but AgentProtocolError, nor read past the message", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const body = Buffer.from(bytes);
        for (const parse of [parseIdentities, parseSignRequest]) {
          try {
            parse(body);
          } catch (error) {
            expect(AgentProtocolError.isInstance(error)).toBe(true);
          }
        }
        try {
          new MessageReader().push(body);
        } catch (error) {
          expect(AgentProtocolError.isInstance(error)).toBe(true);
        }
      }),
      { numRuns: 5000 * FUZZ },
    );
  });

  it("refuses an identities count the message cannot hold", () => {
    expect(() => parseIdentities(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(/keys in 4 bytes/);
  });

  it("knows a fingerprint as ssh-add prints it", () => {
    expect(isFingerprint("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8")).toBe(true);
    expect(isFingerprint("SHA256:short")).toBe(false);
    expect(isFingerprint("MD5:00:11")).toBe(false);
  });
});
