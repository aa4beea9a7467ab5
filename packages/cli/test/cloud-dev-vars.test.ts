import { describe, expect, it } from "vitest";
import { withVars } from "../src/commands/cloud-run.ts";

describe("alpine cloud dev --var", () => {
  const config = { name: "cp", vars: { ALARM_INTERVAL_SECONDS: "60", CONTAINER_PROFILES: "{}" } };

  it("overrides a var wrangler.jsonc declares, leaving the rest and the file's config alone", () => {
    const out = withVars(config, ["ALARM_INTERVAL_SECONDS=10"]);
    expect(out.vars).toEqual({ ALARM_INTERVAL_SECONDS: "10", CONTAINER_PROFILES: "{}" });
    expect(config.vars.ALARM_INTERVAL_SECONDS).toBe("60");
  });

  it("refuses an undeclared var or a malformed one as a usage error", () => {
    expect(() => withVars(config, ["ALARM_INTERVAL=10"])).toThrow(
      expect.objectContaining({ reason: "usage_invalid" }),
    );
    expect(() => withVars(config, ["ALARM_INTERVAL_SECONDS"])).toThrow(
      expect.objectContaining({ reason: "usage_invalid" }),
    );
  });
});
