/**
 * A minimal host HTTP server for the stack's own e2e tests (on 127.0.0.1, random port):
 * `GET /bytes/<size>/<seed>` serves seeded bytes, `PUT /upload` answers `<sha256> <bytes>`.
 * The same seeded stream (AES-256-CTR over zeros) can be produced in the guest with
 * `node --input-type=module -e SEEDED_BYTES_PROGRAM <size> <seed>`.
 */
import { createCipheriv, createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const CHUNK = 64 * 1024;

function* seeded(size: number, seed: number): Generator<Buffer> {
  const key = createHash("sha256").update(`desktopd-e2e:${seed}`).digest();
  const c = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zero = Buffer.alloc(CHUNK);
  for (let left = size; left > 0; left -= CHUNK) yield c.update(zero.subarray(0, Math.min(CHUNK, left)));
}

export function seededSha256(size: number, seed: number): string {
  const h = createHash("sha256");
  for (const chunk of seeded(size, seed)) h.update(chunk);
  return h.digest("hex");
}

export const SEEDED_BYTES_PROGRAM = `
import { createCipheriv, createHash } from "node:crypto";
const [size, seed] = process.argv.slice(1).map(Number);
const c = createCipheriv("aes-256-ctr", createHash("sha256").update("desktopd-e2e:" + seed).digest(), Buffer.alloc(16));
const zero = Buffer.alloc(${CHUNK});
let left = size;
function pump() {
  while (left > 0) {
    const n = Math.min(${CHUNK}, left);
    left -= n;
    if (!process.stdout.write(c.update(zero.subarray(0, n)))) return void process.stdout.once("drain", pump);
  }
  process.stdout.end();
}
pump();
`;

export async function startHostHttp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const [route, a, b] = (req.url ?? "/").split("/").filter(Boolean);
    if (route === "bytes") {
      const size = Number(a);
      res.writeHead(200, { "content-length": size });
      const chunks = seeded(size, Number(b ?? 1));
      const pump = () => {
        for (let next = chunks.next(); !next.done; next = chunks.next()) {
          if (!res.write(next.value)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    } else if (route === "upload") {
      const hash = createHash("sha256");
      let bytes = 0;
      req.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      req.on("end", () => res.writeHead(200).end(`${hash.digest("hex")} ${bytes}\n`));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
