import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { SandboxdConfigSchema } from "@alpine/core/sandboxd-api";
import { describe, expect, it } from "vitest";
import { SandboxEnvironment } from "../src/environment.ts";
import { Logger } from "../src/log.ts";
import { listPreparedManifests, receivePreparedFile } from "../src/prepared-transfer.ts";

/**
 * The prepared-environment cache without OpenCode: setup runs unconfined here (the
 * confinement is the e2e suites'); what is saved, verified, refused and restored.
 */
const SECRET = "s3cret-value-E2E-0123456789";

function sandbox(store: string, setup: string[]) {
  const root = mkdtempSync("/var/tmp/alpine-env-unit-");
  const ws = join(root, "workspace");
  mkdirSync(ws, { recursive: true });
  const git = (...a: string[]) => execFileSync("git", a, { cwd: ws, stdio: "pipe" });
  git("init", "-q");
  writeFileSync(join(ws, ".gitignore"), "build/\n");
  writeFileSync(join(ws, "package-lock.json"), "{}\n");
  const config = SandboxdConfigSchema.parse({
    sandbox_id: "sbx_unit",
    name: "unit",
    token: "t".repeat(20),
    workspace_dir: ws,
    home_dir: join(root, "home"),
    tmp_dir: join(root, "tmp"),
    log_file: join(root, "logs", "sandboxd.log"),
    isolation: "none",
    opencode_bin: "/bin/true",
    environment: { setup, start: [], env: { GREETING: "hi" }, ports: [] },
    secrets: [{ name: "TOKEN", value: SECRET, agent: false }],
    prepared: { dir: store, image: "img" },
  });
  const log = new Logger(config.log_file);
  const env = new SandboxEnvironment(config, log, (shell, _net, extra) => ({
    cmd: "/bin/sh",
    args: ["-c", shell],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: config.home_dir, ...extra },
  }));
  const lines: string[] = [];
  const prepare = () => env.prepare("repo-url", false, (l) => lines.push(l));
  return { ws, env, lines, prepare, logFile: config.log_file };
}

describe("prepared environments", () => {
  const BUILD = ['mkdir -p build && echo "built with $GREETING" > build/out && echo "token is $TOKEN"'];

  it("saves after setup, restores in another sandbox (setup not run), output redacted", async () => {
    const store = mkdtempSync("/var/tmp/alpine-env-store-");
    const a = sandbox(store, BUILD);
    await a.prepare();
    expect(a.env.status()?.setup.state).toBe("ran");
    expect(a.lines).toContain("token is ***");
    expect(readFileSync(a.logFile, "utf8")).not.toContain(SECRET);
    const keys = readdirSync(store);
    expect(keys).toHaveLength(1);
    const b = sandbox(store, BUILD);
    await b.prepare();
    expect(b.env.status()?.setup.state).toBe("restored");
    expect(readFileSync(join(b.ws, "build", "out"), "utf8")).toBe("built with hi\n");
    expect(b.lines.some((l) => l.startsWith("token is"))).toBe(false);
    // A changed lockfile: another key, setup again.
    const c = sandbox(store, BUILD);
    writeFileSync(join(c.ws, "package-lock.json"), '{"v":2}\n');
    await c.prepare();
    expect(c.env.status()?.setup.state).toBe("ran");
    expect(readdirSync(store)).toHaveLength(2);
  });

  it("a damaged preparation is removed and setup runs", async () => {
    const store = mkdtempSync("/var/tmp/alpine-env-store-");
    await sandbox(store, BUILD).prepare();
    const [key] = readdirSync(store);
    writeFileSync(join(store, key as string, "workspace.tar.gz"), "not what was saved");
    const b = sandbox(store, BUILD);
    await b.prepare();
    expect(b.env.status()?.setup.state).toBe("ran");
    expect(b.env.status()?.setup.cache_note ?? "").toMatch(/sha256/);
    expect(existsSync(join(b.ws, "build", "out"))).toBe(true);
  });

  // Cloudflare: the control plane stages an R2 entry into a runtime's store (PUT /v1/prepared).
  it("a preparation staged into the store (prepared-transfer.ts) is restored; a corrupt one runs setup with a warning", async () => {
    const saved = mkdtempSync("/var/tmp/alpine-env-store-");
    await sandbox(saved, BUILD).prepare();
    const [key] = readdirSync(saved) as [string];
    const cfg = SandboxdConfigSchema.parse({
      sandbox_id: "sbx_unit",
      name: "unit",
      token: "t".repeat(20),
      workspace_dir: "/nonexistent/workspace",
      home_dir: "/nonexistent/home",
      tmp_dir: "/nonexistent/tmp",
      log_file: join(saved, "..", `${key.slice(0, 8)}-transfer.log`),
      isolation: "none",
      opencode_bin: "/bin/true",
      prepared: { dir: saved, image: "img" },
    });
    expect(listPreparedManifests(cfg).map((m) => (m as { key: string }).key)).toEqual([key]);
    const stage = async (corrupt: boolean) => {
      const store = mkdtempSync("/var/tmp/alpine-env-store-");
      const into = { ...cfg, prepared: { ...cfg.prepared!, dir: store } };
      // The manifest last, as the control plane sends it: it moves the entry into place.
      for (const name of ["workspace.tar.gz", "home.tar.gz", "manifest.json"]) {
        const body =
          corrupt && name === "workspace.tar.gz"
            ? Buffer.from("rotten")
            : readFileSync(join(saved, key, name));
        await receivePreparedFile(into, key, name, Readable.from([body]) as never, new Logger(cfg.log_file));
      }
      expect(readdirSync(store)).toEqual([key]);
      return store;
    };
    const good = sandbox(await stage(false), BUILD);
    await good.prepare();
    expect(good.env.status()?.setup.state).toBe("restored");
    expect(readFileSync(join(good.ws, "build", "out"), "utf8")).toBe("built with hi\n");
    const bad = sandbox(await stage(true), BUILD);
    await bad.prepare();
    expect(bad.env.status()?.setup.state).toBe("ran");
    expect(bad.lines.some((l) => l.startsWith("warning: prepared environment unusable"))).toBe(true);
    expect(readFileSync(join(bad.ws, "build", "out"), "utf8")).toBe("built with hi\n");
  });

  it("a preparation holding a secret's value is not saved", async () => {
    const store = mkdtempSync("/var/tmp/alpine-env-store-");
    const a = sandbox(store, ['mkdir -p build && echo "$TOKEN" > build/leak']);
    await a.prepare();
    expect(a.env.status()?.setup.state).toBe("ran");
    expect(a.env.status()?.setup.cache_note).toMatch(/held the value of a secret/);
    expect(readdirSync(store).filter((n) => !n.startsWith("."))).toEqual([]);
  });

  it("a failing setup throws setup_failed with the output's tail", async () => {
    const store = mkdtempSync("/var/tmp/alpine-env-store-");
    const a = sandbox(store, ['echo "step one"; echo "it broke" >&2; exit 4']);
    const err = await a.prepare().then(
      () => null,
      (e: unknown) => e as { reason: string; message: string; details: Record<string, unknown> },
    );
    expect(err?.reason).toBe("setup_failed");
    expect(err?.message).toContain("it broke");
    expect(err?.details).toMatchObject({ exit_code: 4, tail: ["step one", "it broke"] });
    expect(a.env.status()?.setup.state).toBe("failed");
  });
});
