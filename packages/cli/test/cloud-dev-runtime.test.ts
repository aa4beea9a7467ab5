import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, ROOT } from "../../../test/helpers/cli.ts";
import { freePort } from "../../../test/helpers/ports.ts";
import { containerImages, dockerSocket } from "../src/cloud/dev-docker.ts";
import { miniflareOptions, startDevRuntime } from "../src/cloud/dev-runtime.ts";
import { readWranglerConfig } from "../src/cloud/wrangler-config.ts";

const TOKEN = "cp-DEVRUNTIMETEST0123456789abcdef";
const MODEL_KEY = "sk-DEVRUNTIME-MODEL-KEY-0123456789";
const config = () => readWranglerConfig(join(ROOT, "packages", "worker"));

/** Command lines of the workerd processes this test process started (Miniflare spawns them). */
function ownWorkerds(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      if (ppid === process.pid && /\bworkerd\b/.test(cmd)) out.push(cmd);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Files under dir whose bytes contain s. */
function filesContaining(dir: string, s: string): string[] {
  const hits: string[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if (readFileSync(path).includes(s)) hits.push(path);
  }
  return hits;
}

describe("alpine cloud dev's workerd runtime (Miniflare)", () => {
  it("takes wrangler.jsonc's bindings: SQLite Durable Objects, the R2 bucket, vars and the secrets, on 127.0.0.1", () => {
    const o = miniflareOptions(
      { port: 8787, stateDir: "/x/state", config: config(), secrets: { ALPINE_CONTROL_PLANE_TOKEN: TOKEN } },
      "/x/worker.js",
    ) as Record<string, unknown>;
    expect(o.host).toBe("127.0.0.1");
    expect(o.durableObjects).toMatchObject({
      SANDBOX: { className: "SandboxObject", useSQLite: true },
      REGISTRY: { className: "RegistryObject", useSQLite: true },
    });
    expect(o.r2Buckets).toEqual({ CHECKPOINTS: "alpine-checkpoints" });
    expect(o.bindings).toMatchObject({ CHECKPOINT_PREFIX: "sandboxes", ALPINE_CONTROL_PLANE_TOKEN: TOKEN });
    expect(o.defaultPersistRoot).toBe("/x/state/v3");
  });

  it("with Docker, each container class is bound to its profile's sandbox image and workerd's engine is the daemon's socket", () => {
    const images = containerImages(config(), { default: "sbx:default", large: "sbx:large", other: "x" });
    expect(images).toEqual({ SandboxContainer: "sbx:default", SandboxContainerLarge: "sbx:large" });
    // A profile without its own image builds the same Dockerfile: the default profile's image.
    expect(containerImages(config(), { default: "sbx:default" })).toEqual({
      SandboxContainer: "sbx:default",
      SandboxContainerLarge: "sbx:default",
    });
    const o = miniflareOptions(
      {
        port: 8787,
        stateDir: "/x/state",
        config: config(),
        secrets: { ALPINE_CONTROL_PLANE_TOKEN: TOKEN },
        docker: { socketPath: "unix:///run/d.sock", images },
      },
      "/x/worker.js",
    ) as Record<string, unknown>;
    expect(o.durableObjects).toMatchObject({
      SANDBOX: { className: "SandboxObject" },
      SANDBOX_CONTAINER: { className: "SandboxContainer", container: { imageName: "sbx:default" } },
      SANDBOX_CONTAINER_LARGE: { className: "SandboxContainerLarge", container: { imageName: "sbx:large" } },
    });
    expect((o.durableObjects as Record<string, object>).SANDBOX).not.toHaveProperty("container");
    expect(o.containerEngine).toEqual({ localDocker: { socketPath: "unix:///run/d.sock" } });
    expect(dockerSocket({ DOCKER_HOST: "unix:///run/alpine-test-docker/docker.sock" })).toBe(
      "unix:///run/alpine-test-docker/docker.sock",
    );
    expect(() => dockerSocket({ DOCKER_HOST: "tcp://10.0.0.1:2375" })).toThrow(/unix socket/);
  });

  it("with Docker, the Worker runs its production provider on ctx.container: a launch's start goes to the daemon's socket", async () => {
    const dir = mkdtempSync(join(tmpdir(), "alpine-devrt-docker-"));
    // No daemon listens there: what is checked is that workerd, not a container host, starts the container.
    const socket = `unix://${join(dir, "no-daemon.sock")}`;
    const lines: string[] = [];
    const rt = await startDevRuntime({
      port: await freePort(),
      stateDir: join(dir, "state"),
      config: config(),
      secrets: { ALPINE_CONTROL_PLANE_TOKEN: TOKEN },
      docker: { socketPath: socket, images: containerImages(config(), { default: "sbx:default" }) },
      log: (l) => lines.push(l),
      verbose: true,
    });
    try {
      const r = await fetch(`${rt.url}/v1/sandboxes/probe/launch`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ repo: "https://git.invalid/x.git" }),
      });
      const body = (await r.json()) as {
        reason_code: string;
        error: string;
        details: Record<string, unknown>;
      };
      expect(body.reason_code).toBe("agent_start_failed");
      expect(body.details.binding).toBe("SANDBOX_CONTAINER");
      // Without a container engine the class has no ctx.container ("containers are disabled here").
      expect(body.error).not.toMatch(/disabled/);
      expect(lines.join("\n")).toContain(join(dir, "no-daemon.sock"));
    } finally {
      await rt.dispose();
    }
  });

  it("serves the Worker with auth, keeps Durable Object state across restarts, never puts the token in argv, and leaves no workerd", async () => {
    const stateDir = join(mkdtempSync(join(tmpdir(), "alpine-devrt-")), "state");
    const lines: string[] = [];
    const start = async () =>
      startDevRuntime({
        port: await freePort(),
        stateDir,
        config: config(),
        secrets: { ALPINE_CONTROL_PLANE_TOKEN: TOKEN },
        log: (l) => lines.push(l),
        verbose: false,
      });
    const putAuth = async (url: string, entries: Record<string, unknown>) => {
      const r = await fetch(`${url}/v1/auth`, {
        method: "PUT",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ entries }),
      });
      expect(r.status).toBe(200);
      return ((await r.json()) as { held: string[] }).held;
    };

    const first = await start();
    try {
      expect(new URL(first.url).hostname).toBe("127.0.0.1");
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${first.url}/v1/sandboxes`)).status).toBe(401);
      expect(await putAuth(first.url, { a: { type: "api", key: MODEL_KEY } })).toEqual(["a"]);
      const cmds = ownWorkerds();
      expect(cmds.length).toBeGreaterThan(0);
      for (const c of cmds) expect(c).not.toContain(TOKEN);
    } finally {
      await first.dispose();
    }

    const second = await start();
    try {
      // The registry's sealed store came back from disk, opened with the same token.
      expect(await putAuth(second.url, { b: { type: "api", key: "k2" } })).toEqual(["a", "b"]);
    } finally {
      await second.dispose();
    }
    expect(ownWorkerds()).toEqual([]);
    // The model key is sealed on disk; neither it nor the token is in the state or the log.
    const sqlite = readdirSync(join(stateDir, "v3", "do"), { recursive: true }).map(String);
    expect(sqlite.some((f) => f.endsWith(".sqlite"))).toBe(true);
    expect(filesContaining(stateDir, MODEL_KEY)).toEqual([]);
    expect(filesContaining(stateDir, TOKEN)).toEqual([]);
    expect(lines.join("\n")).not.toContain(TOKEN);
  });

  it("alpine cloud dev survives its workerd dying: a new workerd serves the same port and state, and stopping it leaves none", async () => {
    const port = await freePort();
    const dev = spawn(process.execPath, [CLI, "cloud", "dev", "--port", String(port), "--json"], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ALPINE_HOME: mkdtempSync(join(tmpdir(), "alpine-devcmd-")),
        ALPINE_CONTROL_PLANE_TOKEN: TOKEN,
        NO_COLOR: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    dev.stdout.on("data", (d) => (out += d));
    dev.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => dev.once("exit", (code) => r(code)));
    const workerdOf = () => childrenOf(dev.pid!).filter((c) => /\bworkerd\b/.test(c.cmd));
    const v1 = (token?: string) =>
      fetch(`http://127.0.0.1:${port}/v1/sandboxes`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }).then((r) => r.status);
    try {
      await waitUntil(
        () => out.includes('"url"'),
        60_000,
        () => `cloud dev did not start: ${err}`,
      );
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(await v1(TOKEN)).toBe(200);
      const first = workerdOf();
      expect(first.length).toBeGreaterThan(0);
      for (const w of first) process.kill(w.pid, "SIGKILL");

      // Miniflare starts another workerd: the same URL answers again, with the same token binding.
      let answered = false;
      const deadline = Date.now() + 30_000;
      while (!answered && Date.now() < deadline) {
        answered = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (!answered) await new Promise((r) => setTimeout(r, 200));
      }
      expect(answered, `no answer after workerd was killed: ${err}`).toBe(true);
      const second = workerdOf();
      expect(second.length).toBeGreaterThan(0);
      expect(second.map((w) => w.pid)).not.toEqual(expect.arrayContaining(first.map((w) => w.pid)));
      expect(await v1()).toBe(401);
      expect(await v1(TOKEN)).toBe(200);
      expect(dev.exitCode).toBeNull();

      // Ctrl-C stops it, and it takes its workerd with it.
      dev.kill("SIGINT");
      // 130 (128 + SIGINT) is the status Miniflare's own signal handling exits with.
      expect([0, 130]).toContain(await exited);
      for (const w of second) {
        await waitUntil(
          () => !isRunning(w.pid),
          10_000,
          () => `workerd ${w.pid} left running`,
        );
      }
    } finally {
      // A failed assertion must not leave a workerd behind: Miniflare's children outlive a SIGKILLed parent.
      for (const w of workerdOf()) process.kill(w.pid, "SIGKILL");
      dev.kill("SIGKILL");
    }
  });
});

/** Whether a process runs: it exists and is not a zombie waiting for a reaper that is not its parent. */
function isRunning(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/** Direct children of a process (pid and command line). */
function childrenOf(pid: number): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const ppid = Number(readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
      if (ppid === pid)
        out.push({ pid: Number(p), cmd: readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ") });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function waitUntil(cond: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((r) => setTimeout(r, 100));
  }
}
