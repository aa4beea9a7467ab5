import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, runCli } from "../../../test/helpers/cli.ts";
import { GLOBAL_FLAGS } from "../src/commands/program.ts";
import { REGISTRY } from "../src/commands/registry.ts";
import { LIST_NAMES, plainList } from "../src/fast.ts";

describe("the fast path of `alpine list`", () => {
  it("knows list by the names its declaration gives, as bin/alpine.js does", () => {
    const list = REGISTRY.find((entry) => entry.name === "list");
    expect(list?.kind).toBe("command");
    if (list?.kind !== "command") return;
    expect([...LIST_NAMES].sort()).toEqual([list.name, ...list.aliases].sort());
    // Its one flag of its own (--all, the control plane's) is not a plain list: the full CLI takes it.
    expect(Object.keys(list.flags)).toEqual(["all"]);
    expect(plainList(["list", "--all"])).toBeNull();
    expect(list.config).toBe(false);
    const bin = readFileSync(join(ROOT, "packages/cli/bin/alpine.js"), "utf8");
    for (const name of LIST_NAMES) expect(bin).toContain(`argv[0] === "${name}"`);
  });

  it("takes the boolean global flags the program declares", () => {
    const booleans = Object.entries(GLOBAL_FLAGS).filter(([, spec]) => spec.type === "boolean");
    expect(booleans.map(([key]) => key).sort()).toEqual(["json", "verbose"]);
    expect(plainList(["list", "--verbose"])).toEqual({ json: false, verbose: true });
  });

  it("takes only a plain list/ls with --json and -v", () => {
    expect(plainList(["list"])).toEqual({ json: false, verbose: false });
    expect(plainList(["ls", "--json"])).toEqual({ json: true, verbose: false });
    expect(plainList(["list", "-v", "--json"])).toEqual({ json: true, verbose: true });
    for (const argv of [
      ["list", "--help"],
      ["list", "-h"],
      ["list", "--config", "x.yaml"],
      ["list", "extra"],
      ["list", "--bogus"],
      ["status", "x"],
      ["--json", "list"],
      [],
    ]) {
      expect(plainList(argv), argv.join(" ")).toBeNull();
    }
  });

  it("prints what the full CLI prints, and leaves help and errors to it", async () => {
    const env = { ALPINE_HOME: mkdtempSync(join(tmpdir(), "alpine-fast-")) };
    expect((await runCli(["list", "--json"], { env })).json()).toEqual([]);
    expect((await runCli(["ls"], { env })).stdout).toContain("no sandboxes yet");
    const help = await runCli(["list", "--help"], { env });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("List every sandbox alpine knows");
    const bad = await runCli(["list", "--bogus", "--json"], { env });
    expect(bad.code).toBe(1);
    expect(bad.json().reason_code).toBe("usage_invalid");
  });

  it("gives the same output, errors and exit codes as the full CLI", async () => {
    // `--json list` is the same command, but not a plain list: it goes through the full CLI.
    const same = async (env: NodeJS.ProcessEnv, flags: string[]) => {
      const fast = await runCli(["list", ...flags], { env });
      const full = await runCli([...flags, "list"], { env });
      expect(fast, flags.join(" ")).toEqual({ ...full, json: fast.json });
      return fast;
    };
    const home = mkdtempSync(join(tmpdir(), "alpine-fast-"));
    expect((await same({ ALPINE_HOME: home }, ["--json"])).json()).toEqual([]);
    await same({ ALPINE_HOME: home }, []);
    // A state database it cannot use: the same error, exit code 2.
    const broken = mkdtempSync(join(tmpdir(), "alpine-fast-"));
    writeFileSync(join(broken, "state.db"), "not a database, ".repeat(20));
    expect((await same({ ALPINE_HOME: broken }, ["--json"])).json().reason_code).toBe("state_store_error");
    expect((await same({ ALPINE_HOME: broken }, ["-v"])).code).toBe(2);
  });

  it("leaves a list that may be the control plane's to the full CLI", async () => {
    const env = {
      ALPINE_HOME: mkdtempSync(join(tmpdir(), "alpine-fast-")),
      ALPINE_SANDBOX_PROVIDER: "cloudflare",
    };
    const res = await runCli(["list", "--json"], { env });
    expect(res.code).toBe(1);
    expect(res.json()).toMatchObject({ reason_code: "config_invalid" });
    expect(res.json().error).toContain("control_plane_url");
  });

  it("is one CommonJS file that needs nothing but Node and better-sqlite3's native addon", () => {
    const bundle = readFileSync(join(ROOT, "packages/cli/dist/fast.cjs"), "utf8");
    const required = [...bundle.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1] ?? "");
    // bindings: better-sqlite3's own lookup of its addon, only where the addon is not in build/.
    expect(
      required.filter((r) => !r.startsWith("node:") && !["fs", "path", "util", "bindings"].includes(r)),
    ).toEqual([]);
    expect(bundle).not.toMatch(/\bimport\(/);
  });
});
