import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";
import { plainList } from "../src/fast.ts";

describe("the fast path of `alpine list`", () => {
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
});
