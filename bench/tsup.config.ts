import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/main.ts"],
  format: ["esm"],
  sourcemap: true,
  clean: true,
  target: "node20",
  // The VM mode's test VM comes from the workspace package (built before desktopd), not a copy.
  external: ["@desktopd/stack"],
});
