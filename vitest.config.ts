import { defineConfig } from "vitest/config";

// One command runs every package's tests. Unit tests are fast and need nothing;
// e2e tests drive real Linux guests (network namespaces, TAP) and need root.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "bench/test/**/*.test.ts"],
          exclude: ["**/*.e2e.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "e2e",
          include: [
            "packages/*/test/**/*.e2e.test.ts",
            "apps/*/test/**/*.e2e.test.ts",
            "bench/test/**/*.e2e.test.ts",
          ],
          // Namespaces, TAP devices and the daemon are system-wide: run files one at a time.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
