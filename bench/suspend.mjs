// Scale-to-zero (issue 18, "Measure" 3; docs/performance.md, "Suspended sandboxes"):
//
//   memory    N sandboxes created on this machine (default 30), N-1 of them suspended: the
//             resident memory of alpine and its sandboxes (every process whose working directory
//             is under ALPINE_HOME, and their descendants) against that of 1 running sandbox.
//             Goal ≤ 1.1.
//   resume    `alpine task` to a suspended sandbox (command start → task accepted, command exits),
//             against `alpine launch` of a fresh sandbox of the same repo. Goal ≤ 1.5.
//
// Real OpenCode, the e2e fixtures' git server and stub model (bundled from test/e2e/env.ts).
// Run with `npm run bench:suspend` (or BENCH_SUSPEND=1 npm run bench); it takes ≈ 4 minutes on
// 2 cores with 30 sandboxes. BENCH_SUSPEND_COUNT=N changes the count, BENCH_RUNS=N the runs of
// the resume figure (default 3). Writes bench/results-suspend.json.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const COUNT = Number(process.env.BENCH_SUSPEND_COUNT ?? 30);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SUSPEND_AFTER_S = 3;
const cli = join(root, "packages", "cli", "bin", "alpine.js");
const started = Date.now();
const say = (msg) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { build } = await import("esbuild");
const cacheDir = join(root, "node_modules", ".cache", "alpine-bench");
await build({
  entryPoints: { "e2e-env": join(root, "test", "e2e", "env.ts") },
  outdir: cacheDir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  packages: "external",
  logLevel: "error",
});
const { makeEnv } = await import(join(cacheDir, "e2e-env.mjs"));
const e = await makeEnv({});
const baseEnv = {
  ...process.env,
  ...e.env,
  ALPINE_SANDBOX_SUSPEND_AFTER_MINUTES: String(SUSPEND_AFTER_S / 60),
};

/** Runs the CLI without blocking this process (its git server and stub model answer meanwhile). */
function alpine(args, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: e.cwd,
      env: { ...baseEnv, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`alpine ${args.join(" ")} exited ${code}: ${out}${err}`));
      else resolve({ out, ms });
    });
  });
}
const list = async () => JSON.parse((await alpine(["list", "--json"])).out);

/** Resident memory (MiB) of every process working under ALPINE_HOME, and of their descendants. */
function residentMiB() {
  const procs = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, "utf8");
      const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // Not ours to read, or gone: judged by its parent only.
      }
      procs.push({ pid: Number(name), ppid, rss, cwd });
    } catch {
      // Exited while listed.
    }
  }
  const ours = new Set(procs.filter((p) => p.cwd.startsWith(e.alpineHome)).map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  return { mib: procs.filter((p) => ours.has(p.pid)).reduce((s, p) => s + p.rss, 0), processes: ours.size };
}

const results = [];
/** Every sandbox this run made, torn down at the end whatever happened. */
const made = [];
try {
  // The floor: one running sandbox, suspension off, idle; measured alone.
  say("one running sandbox");
  await alpine(["launch", "awake", "--repo", e.repoUrl, "--json"], {
    ALPINE_SANDBOX_SUSPEND_AFTER_MINUTES: "0",
  });
  await new Promise((r) => setTimeout(r, 3000));
  const one = residentMiB();

  say(`${COUNT - 1} more sandboxes, each suspending ${SUSPEND_AFTER_S} s after it goes idle`);
  for (let i = 1; i < COUNT; i++) {
    made.push(`dozy-${i}`);
    await alpine(["launch", `dozy-${i}`, "--repo", e.repoUrl, "--json"]);
    if (i % 10 === 0) say(`  ${i} launched`);
  }
  const deadline = Date.now() + 120_000;
  let suspended = 0;
  while (Date.now() < deadline) {
    suspended = (await list()).filter((s) => s.state === "suspended").length;
    if (suspended === COUNT - 1) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (suspended !== COUNT - 1) throw new Error(`only ${suspended} of ${COUNT - 1} sandboxes suspended`);
  await new Promise((r) => setTimeout(r, 1000));
  const all = residentMiB();
  const disk = (await list()).reduce((s, i) => s + (i.disk_bytes ?? 0), 0);
  results.push({
    name: `memory: ${COUNT} sandboxes, ${COUNT - 1} suspended`,
    alpine: all.mib,
    floor: one.mib,
    ratio: all.mib / one.mib,
    unit: "MiB",
    goal: 1.1,
    note: `${all.processes} processes vs ${one.processes}; the suspended hold ${(disk / 2 ** 20).toFixed(0)} MiB of disk`,
  });

  say("task to a suspended sandbox vs a fresh launch");
  const resume = [];
  const fresh = [];
  for (let r = 0; r < RUNS; r++) {
    resume.push((await alpine(["task", `dozy-${r + 1}`, "WRITE LATER.md after the nap", "--json"])).ms);
    made.push(`fresh-${r}`);
    fresh.push((await alpine(["launch", `fresh-${r}`, "--repo", e.repoUrl, "--json"])).ms);
  }
  results.push({
    name: "task to a suspended sandbox (accepted)",
    alpine: median(resume),
    floor: median(fresh),
    ratio: median(resume) / median(fresh),
    unit: "ms",
    goal: 1.5,
    note: `floor: a fresh \`alpine launch\` of the same repo; runs ${resume.map((x) => x.toFixed(0)).join(", ")} vs ${fresh.map((x) => x.toFixed(0)).join(", ")}`,
  });
} finally {
  say("cleaning up");
  for (const name of made) {
    await alpine(["teardown", name, "--force", "--json"]).catch((err) => say(`cleanup: ${err.message}`));
  }
  await e.close();
}

const machine = { cpus: cpus().length, memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version };
writeFileSync(
  join(root, "bench", "results-suspend.json"),
  `${JSON.stringify({ at: new Date().toISOString(), count: COUNT, runs: RUNS, duration_s: Math.round((Date.now() - started) / 1000), machine, load_average_1m: loadavg()[0], results }, null, 2)}\n`,
);
for (const r of results) {
  console.log(
    `${r.name.padEnd(42)} ${`${r.alpine.toFixed(0)} ${r.unit}`.padStart(10)} ${`${r.floor.toFixed(0)} ${r.unit}`.padStart(10)} ${r.ratio.toFixed(2).padStart(6)} ≤${r.goal} ${r.ratio <= r.goal ? "yes" : "NO"}  (${r.note})`,
  );
}
