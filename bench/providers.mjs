// Compares the providers side by side in one run (docs/providers.md):
//   launch-to-ready of a tiny repo (command start until `launch` returns: OpenCode answers, agent idle)
//   memory of an idle sandbox: sandboxd and OpenCode RSS, and for docker the container's whole usage
// The repo is served by `git daemon` on 127.0.0.1 so a container (host network) reaches it too.
// Docker: uses DOCKER_HOST, else the tests' private daemon socket; the image is the tests' image
// (run the docker tests once, or set BENCH_IMAGE to an image built by `alpine image build`).
// Usage: node bench/providers.mjs   (BENCH_RUNS=N, default 3)
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const CLI = join(ROOT, "packages", "cli", "bin", "alpine.js");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const IMAGE = process.env.BENCH_IMAGE ?? "alpine-e2e-sandbox:test";
const work = mkdtempSync(join(tmpdir(), "alpine-bench-providers-"));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (kib) => Math.round(kib / 1024);

function dockerHost() {
  for (const host of [process.env.DOCKER_HOST, "unix:///run/alpine-test-docker/docker.sock"]) {
    if (!host) continue;
    try {
      execFileSync("docker", ["image", "inspect", IMAGE], {
        env: { ...process.env, DOCKER_HOST: host },
        stdio: "pipe",
      });
      return host;
    } catch {
      // next
    }
  }
  return null;
}

// A tiny repo behind git daemon on 127.0.0.1.
const src = join(work, "src");
mkdirSync(src);
const git = (...args) => execFileSync("git", args, { cwd: src, stdio: "pipe" });
git("init", "-q", "-b", "main");
writeFileSync(join(src, "README.md"), "# bench\n");
git("add", "-A");
git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "init");
const served = join(work, "served");
mkdirSync(served);
execFileSync("git", ["clone", "-q", "--bare", src, join(served, "tiny.git")]);
const port = 20000 + Math.floor(Math.random() * 20000);
const daemon = spawn(
  "git",
  [
    "daemon",
    "--export-all",
    `--base-path=${served}`,
    "--listen=127.0.0.1",
    `--port=${port}`,
    "--reuseaddr",
    served,
  ],
  { stdio: "ignore" },
);
await new Promise((r) => setTimeout(r, 500));
const repo = `git://127.0.0.1:${port}/tiny.git`;

function alpine(env, args) {
  return execFileSync(process.execPath, [CLI, ...args], {
    env,
    cwd: work,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function measure(kind, extraEnv) {
  const home = join(work, `home-${kind}`);
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    ALPINE_HOME: join(home, "alpine"),
    ALPINE_CONFIG: "/dev/null",
    ALPINE_SANDBOX_PROVIDER: kind,
    npm_config_registry: "http://127.0.0.1:9/",
    ...extraEnv,
  };
  mkdirSync(home, { recursive: true });
  const times = [];
  let memory = null;
  for (let i = 0; i < RUNS; i++) {
    const name = `bench-${kind}-${i}`;
    const t0 = performance.now();
    const out = JSON.parse(alpine(env, ["launch", name, "--repo", repo, "--json"]));
    times.push(performance.now() - t0);
    if (i === 0) {
      await new Promise((r) => setTimeout(r, 3000)); // let OpenCode settle
      if (kind === "docker") {
        const c = `alpine-${out.id}`;
        const top = execFileSync("docker", ["top", c, "-eo", "pid,rss,comm"], { env, encoding: "utf8" })
          .trim()
          .split("\n")
          .slice(1)
          .map((l) => l.trim().split(/\s+/));
        const sum = (name) => top.filter((r) => r[2] === name).reduce((a, r) => a + Number(r[1]), 0);
        const usage = execFileSync("docker", ["stats", "--no-stream", "--format", "{{.MemUsage}}", c], {
          env,
          encoding: "utf8",
        }).trim();
        memory = { sandboxd_mib: mib(sum("node")), opencode_mib: mib(sum("opencode")), container: usage };
      } else {
        // One sandbox runs at a time here: sandboxd is the process running sandboxd.js, OpenCode its descendants.
        const procs = execFileSync("ps", ["-eo", "pid=,ppid=,rss=,args="], { encoding: "utf8" })
          .trim()
          .split("\n")
          .map((l) => {
            const [pid, ppid, rss, ...args] = l.trim().split(/\s+/);
            return { pid, ppid, rss: Number(rss), args: args.join(" ") };
          });
        const sandboxd = procs.find((q) => q.args.includes("sandboxd/dist/sandboxd.js"));
        const tree = new Set(sandboxd ? [sandboxd.pid] : []);
        for (let grew = true; grew; ) {
          grew = false;
          for (const q of procs)
            if (tree.has(q.ppid) && !tree.has(q.pid)) {
              tree.add(q.pid);
              grew = true;
            }
        }
        const opencode = procs.filter(
          (q) => tree.has(q.pid) && q !== sandboxd && /opencode/.test(q.args) && !/^bwrap/.test(q.args),
        );
        memory = {
          sandboxd_mib: sandboxd ? mib(sandboxd.rss) : null,
          opencode_mib: mib(opencode.reduce((a, q) => a + q.rss, 0)),
          container: null,
        };
      }
    }
    alpine(env, ["teardown", name, "--force", "--json"]);
  }
  return { kind, runs: RUNS, launch_ms: times.map(Math.round), median_ms: Math.round(median(times)), memory };
}

const results = [];
try {
  results.push(await measure("local", {}));
  const host = dockerHost();
  if (host) {
    results.push(
      await measure("docker", {
        DOCKER_HOST: host,
        ALPINE_DOCKER_NETWORK: "host",
        ALPINE_SANDBOX_IMAGE_PROFILES: JSON.stringify({ default: IMAGE }),
      }),
    );
  } else {
    process.stderr.write(`docker: skipped (no daemon with image ${IMAGE})\n`);
  }
} finally {
  daemon.kill();
  rmSync(work, { recursive: true, force: true });
}
console.log("provider  launch-to-ready median (runs)        sandboxd RSS  OpenCode RSS  container");
for (const r of results) {
  console.log(
    `${r.kind.padEnd(9)} ${(r.median_ms / 1000).toFixed(2)} s (${r.launch_ms.map((t) => (t / 1000).toFixed(2)).join(", ")})`.padEnd(
      47,
    ) +
      `${String(r.memory?.sandboxd_mib ?? "?").padStart(5)} MiB   ${String(r.memory?.opencode_mib ?? "?").padStart(5)} MiB   ${r.memory?.container ?? "-"}`,
  );
}
console.log(
  JSON.stringify({ machine: { cores: (await import("node:os")).cpus().length }, results }, null, 2),
);
