import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // A Docker daemon and the sandbox image for the docker-provider tests (skipped without Docker, except in CI).
    globalSetup: ["test/setup/docker.ts"],
    // End-to-end tests run real OpenCode processes (~320 MB each) on a 2-core machine.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ["default"],
  },
});
