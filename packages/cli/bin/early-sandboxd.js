// `alpine launch` on the local provider starts a sandboxd, whose Node start and module loading
// take 0.2-0.3 s before it can read its config. Started here, before the CLI itself loads, that
// overlaps the CLI's own start instead of following it; the local provider adopts the process
// (packages/cli/src/providers/early-sandboxd.ts). It knows nothing yet: no sandbox, no secret, an
// environment of PATH and LANG only, and it takes its home and working dir from the config that
// arrives on its stdin. Not adopted (another provider, a refused launch, a warm runtime), it reads
// end-of-file on stdin when this process exits and exits as well.
const { spawn } = require("node:child_process");
const { dirname, join } = require("node:path");

const KEY = Symbol.for("alpine.early-sandboxd");

/** The provider the command line or the environment names, if any. */
function namedProvider(argv, env) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i] === "--provider") return argv[i + 1];
    if (argv[i].startsWith("--provider=")) return argv[i].slice("--provider=".length);
  }
  return env.ALPINE_SANDBOX_PROVIDER || undefined;
}

exports.startEarlySandboxd = function startEarlySandboxd(argv, env) {
  // Help starts nothing; --no-wait hands the launch to a background `alpine launch`, which starts its own.
  if (argv.includes("--help") || argv.includes("-h") || argv.includes("--no-wait")) return;
  const provider = namedProvider(argv, env);
  if (provider !== undefined && provider !== "local") return;
  let entry;
  try {
    entry = join(dirname(require.resolve("@alpine/sandboxd/package.json")), "dist", "sandboxd.js");
  } catch {
    return; // not installed beside the CLI: the provider spawns (and reports) as usual
  }
  const child = spawn(process.execPath, [entry], {
    detached: true,
    stdio: ["pipe", "pipe", "ignore"],
    env: { PATH: env.PATH || "/usr/bin:/bin", LANG: env.LANG || "C.UTF-8", ALPINE_SANDBOXD_EARLY: "1" },
  });
  // Failures are the adopter's to see (it checks the process is alive); unadopted, nobody asks.
  child.on("error", () => {});
  child.stdin.on("error", () => {});
  // Until adopted it must not keep this process alive.
  child.unref();
  child.stdin.unref();
  child.stdout.unref();
  globalThis[KEY] = { entry, child };
};
