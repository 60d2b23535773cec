// Runs inside the guest netns: `node acceptclose.mjs PORT`. Accepts, discards input, and closes
// its side once the client has closed; prints "listening" when ready.
import net from "node:net";

const port = Number(process.argv[2]);
const server = net.createServer((s) => {
  s.on("error", () => {});
  s.resume();
  s.on("end", () => s.end());
});
server.listen({ port, backlog: 1024 }, () => console.log("listening"));
