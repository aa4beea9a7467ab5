// `npm run bench`: measures alpine against its floor in the same run and
// writes bench/results.json. Not part of the test suite (timings vary by machine).
//
//   launch-to-ready: `alpine launch` until OpenCode answers and the agent is idle,
//                    against `git clone` + `opencode serve` until healthy
//   memory:          sandboxd's RSS beside OpenCode's, for one idle sandbox
//   cli latency:     `alpine list --json` / `status --json` with 1, 100, 1000 records, against `node -e 0`
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages", "cli", "bin", "alpine.js");
const opencode = join(dirname(require.resolve("opencode-ai/package.json")), "bin", "opencode.exe");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const work = mkdtempSync(join(tmpdir(), "alpine-bench-"));
const env = {
  ...process.env,
  ALPINE_HOME: join(work, "home"),
  NO_COLOR: "1",
  // OpenCode would install a plugin from the registry at every start; keep the measurement local.
  npm_config_registry: "http://127.0.0.1:9/",
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)];
const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6;

function makeRepo(name, files) {
  const dir = join(work, `${name}-src`);
  mkdirSync(dir, { recursive: true });
  const git = (...args) => execFileSync("git", args, { cwd: dir, stdio: "pipe" });
  git("init", "-q", "-b", "main");
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 50}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `file ${i}\n`.repeat(20));
  }
  writeFileSync(join(dir, "README.md"), `# ${name}\n`);
  git("add", "-A");
  git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "init");
  const bare = join(work, `${name}.git`);
  execFileSync("git", ["clone", "-q", "--bare", dir, bare]);
  return bare;
}

function alpine(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`alpine ${args.join(" ")} failed: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function floorOnce(repo, i) {
  const dir = join(work, `floor-${i}`);
  const home = join(dir, "home");
  mkdirSync(home, { recursive: true });
  const start = process.hrtime.bigint();
  execFileSync("git", ["clone", "-q", repo, join(dir, "ws")]);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(opencode, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: join(dir, "ws"),
    env: {
      ...env,
      HOME: home,
      XDG_DATA_HOME: join(home, "d"),
      XDG_CONFIG_HOME: join(home, "c"),
      XDG_STATE_HOME: join(home, "s"),
      XDG_CACHE_HOME: join(home, "k"),
      OPENCODE_SERVER_PASSWORD: "bench",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    },
    stdio: ["ignore", "pipe", "ignore"],
  });
  await new Promise((resolve) =>
    child.stdout.on("data", (d) => String(d).includes("listening") && resolve()),
  );
  const auth = `Basic ${Buffer.from("opencode:bench").toString("base64")}`;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/global/health`, {
        headers: { authorization: auth },
        signal: AbortSignal.timeout(300),
      });
      if (r.ok) break;
    } catch {}
  }
  const t = ms(start);
  child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  return t;
}

function launchOnce(repo, name) {
  const start = process.hrtime.bigint();
  const out = JSON.parse(alpine(["launch", name, "--repo", repo, "--json"]));
  const t = ms(start);
  if (out.state !== "running") throw new Error(`unexpected state ${out.state}`);
  alpine(["teardown", name, "--force", "--json"]);
  return t;
}

async function benchLaunch(label, repo) {
  const launches = [];
  const floors = [];
  for (let i = 0; i < RUNS; i++) {
    // Interleaved, so both see the same machine load.
    floors.push(await floorOnce(repo, `${label}-${i}`));
    launches.push(launchOnce(repo, `bench-${label.replace(/[^a-z0-9]+/g, "-")}-${i}`));
  }
  return {
    name: `launch-to-ready (${label})`,
    alpine_ms: { median: median(launches), p95: p95(launches), runs: launches },
    floor_ms: { median: median(floors), p95: p95(floors), runs: floors },
    ratio: median(launches) / median(floors),
  };
}

function timeCommand(cmd, args, n = 15) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    spawnSync(cmd, args, { env, stdio: "ignore" });
    times.push(ms(start));
  }
  return median(times);
}

function seedRecords(count) {
  const Database = require("better-sqlite3");
  alpine(["list", "--json"]); // creates the schema
  const db = new Database(join(env.ALPINE_HOME, "state.db"));
  db.prepare("DELETE FROM sandboxes WHERE name LIKE 'seed-%'").run();
  const insert = db.prepare(
    "INSERT INTO sandboxes (name, id, version, state, record) VALUES (?, ?, 1, 'destroyed', ?)",
  );
  const at = new Date().toISOString();
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const name = `seed-${String(i).padStart(4, "0")}`;
      const rec = {
        id: `sbx_seed${i}`,
        name,
        provider: "local",
        repo: "/tmp/x",
        ref: null,
        branch: `alpine/${name}`,
        image_profile: "default",
        state: "destroyed",
        created_at: at,
        updated_at: at,
        last_activity: null,
        agent: "unknown",
        runtime: null,
        task: null,
        checkpoint: null,
        export: null,
        error: null,
        version: 1,
      };
      insert.run(name, rec.id, JSON.stringify(rec));
    }
  })();
  db.close();
}

const results = [];
const tiny = makeRepo("tiny", 5);
results.push(await benchLaunch("tiny repo", tiny));
if (!process.env.BENCH_QUICK) results.push(await benchLaunch("5k files", makeRepo("5k", 5000)));

// Memory of one idle sandbox: sandboxd's own RSS apart from OpenCode's (Linux /proc).
function rssMiB(pid) {
  try {
    const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
function descendants(pid) {
  const out = spawnSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" }).stdout.trim().split("\n");
  const rows = out
    .map((l) => l.trim().split(/\s+/, 3))
    .map(([p, pp, args]) => ({ pid: Number(p), ppid: Number(pp), args }));
  const found = [];
  const walk = (p) => {
    for (const r of rows.filter((x) => x.ppid === p)) {
      found.push(r);
      walk(r.pid);
    }
  };
  walk(pid);
  return found;
}
{
  alpine(["launch", "bench-memory", "--repo", tiny, "--json"]);
  await new Promise((r) => setTimeout(r, 3000));
  const Database = require("better-sqlite3");
  const db = new Database(join(env.ALPINE_HOME, "state.db"), { readonly: true });
  const record = JSON.parse(
    db.prepare("SELECT record FROM sandboxes WHERE name = 'bench-memory'").get().record,
  );
  db.close();
  const sandboxdPid = record.runtime.handle.pid;
  const opencodeRss = descendants(sandboxdPid)
    .filter((r) => r.args.includes("opencode"))
    .reduce((sum, r) => sum + rssMiB(r.pid), 0);
  results.push({
    name: "memory per idle sandbox (MiB)",
    alpine_ms: { median: rssMiB(sandboxdPid) },
    floor_ms: { median: opencodeRss },
    ratio: rssMiB(sandboxdPid) / Math.max(1, opencodeRss),
    unit: "MiB",
    note: "alpine column: sandboxd RSS; floor column: OpenCode RSS",
  });
  alpine(["teardown", "bench-memory", "--force", "--json"]);
}

const nodeFloor = timeCommand(process.execPath, ["-e", "0"]);
for (const count of [1, 100, 1000]) {
  seedRecords(count);
  const list = timeCommand(process.execPath, [cli, "list", "--json"]);
  const status = timeCommand(process.execPath, [cli, "status", "seed-0000", "--json"]);
  results.push({
    name: `list --json (${count} records)`,
    alpine_ms: { median: list },
    floor_ms: { median: nodeFloor },
    ratio: list / nodeFloor,
  });
  results.push({
    name: `status --json (${count} records)`,
    alpine_ms: { median: status },
    floor_ms: { median: nodeFloor },
    ratio: status / nodeFloor,
  });
}

const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  memory_gib: Math.round(totalmem() / 2 ** 30),
  node: process.version,
};
writeFileSync(
  join(root, "bench", "results.json"),
  `${JSON.stringify({ at: new Date().toISOString(), machine, results }, null, 2)}\n`,
);
console.log(
  `machine: ${machine.cpus} cores, ${machine.memory_gib} GiB, ${machine.cpu}, node ${machine.node}`,
);
console.log(
  [
    "benchmark".padEnd(34),
    "alpine (median)".padStart(16),
    "floor (median)".padStart(15),
    "ratio".padStart(7),
  ].join(" "),
);
for (const r of results) {
  console.log(
    [
      r.name.padEnd(34),
      `${r.alpine_ms.median.toFixed(0)} ${r.unit ?? "ms"}`.padStart(16),
      `${r.floor_ms.median.toFixed(0)} ${r.unit ?? "ms"}`.padStart(15),
      r.ratio.toFixed(2).padStart(7),
    ].join(" "),
  );
}
rmSync(work, { recursive: true, force: true });
