// The far side's server for the proxy bench, run in its own netns: `node proxy-target.mjs ADDRESS PORT`.
// GET /small answers 16 bytes; GET /bytes streams zeros until the client goes.
import http from "node:http";

const [address, port] = process.argv.slice(2);
const chunk = Buffer.alloc(256 * 1024);
http
  .createServer((req, res) => {
    if (req.url === "/bytes") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const pump = () => {
        while (res.write(chunk)) {}
      };
      res.on("drain", pump);
      res.on("close", () => res.off("drain", pump));
      pump();
      return;
    }
    res.writeHead(200, { "content-length": 16 });
    res.end("far side small\n\n");
  })
  .listen(Number(port), address, () => console.log("ready"));
