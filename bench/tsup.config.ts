import { defineConfig } from "tsup";

export default defineConfig({
  // main: the netns and VM benches; dns: the DNS server bench (npm run bench:dns); soak: npm run soak.
  entry: ["src/main.ts", "src/dns.ts", "src/soak.ts"],
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node20",
  // The VM mode's test VM comes from the workspace package (built before desktopd), not a copy.
  external: ["@desktopd/stack"],
});
