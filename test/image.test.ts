import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers/cli.ts";

/**
 * The sandbox image fetches OpenCode from the npm registry by itself (no npm in
 * the image); its pinned version and integrity must be the project's own, so
 * the docker and Cloudflare sandboxes run the OpenCode the tests ran.
 */
const dockerfile = readFileSync(join(ROOT, "image", "Dockerfile"), "utf8");
const arg = (name: string) => {
  const m = new RegExp(`^ARG ${name}=(\\S+)$`, "m").exec(dockerfile);
  if (!m?.[1]) throw new Error(`image/Dockerfile has no default for ARG ${name}`);
  return m[1];
};
const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
  packages: Record<string, { version?: string; integrity?: string }>;
};

describe("image/Dockerfile", () => {
  it("pins the OpenCode build the project depends on, by version and integrity", () => {
    const pkg = arg("OPENCODE_PACKAGE");
    const locked = lock.packages[`node_modules/${pkg}`];
    expect(locked, `${pkg} is not in package-lock.json`).toBeDefined();
    expect(arg("OPENCODE_VERSION")).toBe(locked?.version);
    expect(arg("OPENCODE_INTEGRITY")).toBe(locked?.integrity);
    const sandboxd = JSON.parse(readFileSync(join(ROOT, "packages", "sandboxd", "package.json"), "utf8"));
    expect(arg("OPENCODE_VERSION")).toBe(sandboxd.dependencies["opencode-ai"]);
  });

  it("runs the Node that scripts/install-deps.sh installs on a host, which satisfies the engines range", () => {
    const installDeps = readFileSync(join(ROOT, "scripts", "install-deps.sh"), "utf8");
    const hostNode = /^node_version=(\S+)$/m.exec(installDeps)?.[1];
    const minMajor = Number(/^node_min_major=(\d+)$/m.exec(installDeps)?.[1]);
    expect(arg("NODE_VERSION")).toBe(hostNode);
    const engines = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).engines.node as string;
    expect(engines).toBe(`>=${minMajor}`);
    expect(Number(arg("NODE_VERSION").split(".")[0])).toBeGreaterThanOrEqual(minMajor);
  });

  it("pins Node by integrity, runs as a non-root user, and its entrypoint is sandboxd alone", () => {
    expect(arg("NODE_INTEGRITY")).toMatch(/^sha512-[A-Za-z0-9+/]+=*$/);
    const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBe("sandbox");
    expect(dockerfile).toMatch(
      /^ENTRYPOINT \["\/usr\/local\/bin\/node", "\/opt\/alpine\/sandboxd\/sandboxd\.js"\]$/m,
    );
  });
});
