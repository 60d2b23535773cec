import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readClientHello } from "../src/index.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);

// ClientHellos captured off loopback with socat: curl (OpenSSL) asking for
// www.sni-test.example, Node asking for api.node-sni.test, openssl s_client -noservername.
const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url));
const curl = fixture("client-hello-curl.bin");
const node = fixture("client-hello-node.bin");
const noSni = fixture("client-hello-no-sni.bin");

/** The same handshake message cut into records of at most `size` bytes: legal, and what big hellos do. */
function reframe(hello: Buffer, size: number): Buffer {
  const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < message.length; at += size) {
    const part = message.subarray(at, at + size);
    const head = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    records.push(head, part);
  }
  return Buffer.concat(records);
}

describe("readClientHello", () => {
  it("reads the server name of real ClientHellos", () => {
    expect(readClientHello(curl)).toEqual({ kind: "tls", serverName: "www.sni-test.example" });
    expect(readClientHello(node)).toEqual({ kind: "tls", serverName: "api.node-sni.test" });
  });

  it("says a hello without server_name is TLS without a name (it goes by address)", () => {
    expect(readClientHello(noSni)).toEqual({ kind: "tls" });
  });

  it("asks for more until the hello is whole, at every cut", () => {
    for (let cut = 0; cut < curl.length; cut++) {
      expect(readClientHello(curl.subarray(0, cut))).toEqual({ kind: "incomplete" });
    }
  });

  it("joins a hello spread over several records", () => {
    for (const size of [1, 7, 100, 300]) {
      const split = reframe(curl, size);
      expect(readClientHello(split)).toEqual({ kind: "tls", serverName: "www.sni-test.example" });
      expect(readClientHello(split.subarray(0, split.length - 1))).toEqual({ kind: "incomplete" });
    }
  });

  it("tells plain HTTP and other bytes from TLS", () => {
    expect(readClientHello(Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))).toEqual({ kind: "not-tls" });
    expect(readClientHello(Buffer.from([0x16, 0x02, 0, 0, 1, 0]))).toEqual({ kind: "not-tls" });
    // A handshake record that is not a ClientHello: TLS, no name.
    const serverHello = Buffer.from(curl);
    serverHello[5] = 0x02;
    expect(readClientHello(serverHello)).toEqual({ kind: "tls" });
  });

  it("refuses a server name that is not a host name", () => {
    const bad = Buffer.from(curl);
    const at = bad.indexOf("www.sni-test.example");
    bad.write("www.sni/test.example", at, "latin1");
    expect(readClientHello(bad)).toEqual({ kind: "tls" });
  });

  it("never throws and never reads past the buffer, whatever a guest sends", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(curl.length), (noise, keep) => {
        // Noise alone, and a real hello with its tail replaced by noise.
        for (const data of [Buffer.from(noise), Buffer.concat([curl.subarray(0, keep), noise])]) {
          const result = readClientHello(data);
          expect(["incomplete", "tls", "not-tls"]).toContain(result.kind);
        }
      }),
      { numRuns: 2000 * FUZZ },
    );
  });
});
