import { lstatSync } from "node:fs";
import { NO_ISOLATION_WARNING, SYSTEM_DIRS } from "@alpine/core";
import { execa } from "execa";
import type { Context } from "../context.ts";
import { sandboxAuthEntries } from "../credentials.ts";
import { green, printJson, red, table } from "../output.ts";
import { bubblewrapWorks } from "../providers/isolation.ts";
import { readOnlyPaths } from "../providers/local-sandboxd.ts";
import { opencodeBinary } from "../runtime-paths.ts";

interface Check {
  name: string;
  ok: boolean;
  version: string | null;
  detail: string;
}

async function versionOf(cmd: string, args: string[], detail: string): Promise<Check> {
  try {
    const r = await execa(cmd, args, { timeout: 10_000, reject: false });
    if (r.exitCode === 0) {
      const version = `${r.stdout || r.stderr}`.trim().split("\n")[0] ?? "";
      return { name: cmd, ok: true, version, detail };
    }
    // reject:false reports a missing binary as a failed result, not a throw.
    if (r.exitCode === undefined)
      return { name: cmd, ok: false, version: null, detail: `${cmd} not found on PATH` };
    const said = `${r.stderr}`.trim().split("\n")[0]?.slice(0, 200);
    return { name: cmd, ok: false, version: null, detail: said || `${cmd} exited with ${r.exitCode}` };
  } catch {
    // execa throws (even with reject:false) only when the process cannot be started at all.
    return { name: cmd, ok: false, version: null, detail: `${cmd} not found on PATH` };
  }
}

/** The wrangler `alpine cloud deploy` runs: the one pinned with packages/worker, else one on PATH. */
async function wranglerCheck(): Promise<Check> {
  const detail = "alpine cloud deploy (the Cloudflare control plane)";
  try {
    const { createRequire } = await import("node:module");
    const { dirname, join } = await import("node:path");
    const bin = join(
      dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
      "bin",
      "wrangler.js",
    );
    const check = await versionOf(process.execPath, [bin, "--version"], detail);
    return { ...check, name: "wrangler" };
  } catch {
    // The pinned wrangler is not installed (an optional dependency): a global one may be.
    return versionOf("wrangler", ["--version"], detail);
  }
}

export async function doctorCommand(ctx: Context): Promise<void> {
  const opencode = opencodeBinary();
  const config = ctx.config;
  const [git, rg, bwrap, docker, wrangler, oc, bwrapOk, auth] = await Promise.all([
    versionOf("git", ["--version"], "clones and exports workspaces"),
    versionOf("rg", ["--version"], "OpenCode's search tool needs ripgrep"),
    versionOf("bwrap", ["--version"], "isolates local sandboxes"),
    versionOf("docker", ["version", "--format", "{{.Server.Version}}"], "docker provider"),
    wranglerCheck(),
    opencode
      ? versionOf(opencode, ["--version"], opencode)
      : Promise.resolve({
          name: "opencode",
          ok: false,
          version: null,
          detail: "opencode-ai is not installed",
        }),
    bubblewrapWorks(),
    sandboxAuthEntries(ctx.home, config),
  ]);
  oc.name = "opencode";
  const authNames = Object.keys(auth);
  const isolation: "bubblewrap" | "none" =
    config.sandbox.isolation === "none" ? "none" : bwrapOk.ok ? "bubblewrap" : "none";
  const sees = isolation === "bubblewrap" ? sandboxSees(config.sandbox.read_only_paths) : null;
  const checks: Check[] = [
    { name: "node", ok: true, version: process.version, detail: process.execPath },
    git,
    rg,
    oc,
    { ...bwrap, ok: bwrap.ok && bwrapOk.ok, detail: bwrapOk.ok ? bwrap.detail : bwrapOk.detail },
    {
      name: "isolation",
      ok: isolation === "bubblewrap",
      version: isolation,
      detail: `sandbox.isolation=${config.sandbox.isolation}`,
    },
    seesCheck(sees),
    docker,
    await sandboxImageCheck(docker.ok, config.sandbox.image_profiles[config.sandbox.image_profile]),
    wrangler,
    {
      name: "auth",
      ok: authNames.length > 0,
      version: null,
      detail: authNames.length
        ? `sandboxes receive: ${authNames.join(", ")}`
        : `no credentials for ${config.opencode.auth_providers.join(", ")}; run \`alpine auth sync\` (the web UI still opens)`,
    },
  ];
  const out = { checks, isolation, sandbox_sees: sees, alpine_home: ctx.home };
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    `${table(
      ["CHECK", "OK", "VERSION", "DETAIL"],
      checks.map((c) => [c.name, c.ok ? green("yes") : red("no"), c.version ?? "-", c.detail]),
    )}\n`,
  );
  process.stdout.write(`alpine home: ${ctx.home}\n`);
}

/** What a local sandbox's agent sees under bubblewrap (sandboxd's bwrap.ts builds the same from core's list). */
function sandboxSees(granted: readonly string[]): { read_only: string[]; read_write: string[] } {
  const system = SYSTEM_DIRS.filter((d) => lstatSync(d, { throwIfNoEntry: false })?.isDirectory());
  return {
    read_only: [
      ...system.map((d) => (d === "/etc" ? "/etc (without its secret files)" : d)),
      "OpenCode, node, git, rg",
      ...readOnlyPaths(granted),
    ],
    read_write: ["its workspace", "its home", "its own /tmp"],
  };
}

function seesCheck(sees: { read_only: string[]; read_write: string[] } | null): Check {
  if (!sees) return { name: "sandbox sees", ok: false, version: null, detail: NO_ISOLATION_WARNING };
  return {
    name: "sandbox sees",
    ok: true,
    version: null,
    detail: `reads ${sees.read_only.join(", ")}; writes ${sees.read_write.join(", ")}; nothing else of this machine`,
  };
}

/** Whether the image of the default profile is on the Docker host (the docker provider needs it). */
async function sandboxImageCheck(dockerOk: boolean, image: string | undefined) {
  const name = "docker image";
  if (!image) return { name, ok: false, version: null, detail: "no image for sandbox.image_profile" };
  if (!dockerOk) return { name, ok: false, version: null, detail: `${image}: no Docker daemon to look in` };
  const { dockerObjectExists } = await import("../providers/docker-cli.ts");
  let present: boolean;
  try {
    present = await dockerObjectExists("image", image);
  } catch (err) {
    return {
      name,
      ok: false,
      version: null,
      detail: `${image}: Docker did not answer (${(err as Error).message})`,
    };
  }
  return {
    name,
    ok: present,
    version: null,
    detail: present ? image : `${image} is not built; run \`alpine image build\``,
  };
}
