import { defineConfig } from "tsup";

export default defineConfig({
  // guest-cli.ts is bundled alone: one file with nothing but Node built-ins, to copy into a guest.
  entry: ["src/index.ts", "src/guest-cli.ts"],
  format: ["esm"],
  dts: { entry: "src/index.ts" },
  sourcemap: true,
  clean: true,
  target: "node20",
  splitting: false,
});
