import { describe, expect, it } from "vitest";
import { confinementView, ETC_SECRETS, NO_ISOLATION_WARNING, SYSTEM_DIRS } from "../src/confinement.ts";

describe("confinementView", () => {
  it("a container sees its image and volume; a local sandbox what its sandboxd reports", () => {
    expect(confinementView("container", undefined)).toEqual({
      boundary: "container",
      read_only: null,
      read_write: null,
      warning: null,
    });
    expect(confinementView("bubblewrap or none", undefined)).toBeNull();
    const reported = { isolation: "bubblewrap" as const, read_only: ["/usr", "/etc"], read_write: ["/w"] };
    expect(confinementView("bubblewrap or none", reported)).toEqual({
      boundary: "bubblewrap",
      read_only: ["/usr", "/etc"],
      read_write: ["/w"],
      warning: null,
    });
  });

  it("an unconfined local sandbox carries the loud warning", () => {
    const view = confinementView("bubblewrap or none", { isolation: "none", read_only: [], read_write: [] });
    expect(view).toMatchObject({ boundary: "none", warning: NO_ISOLATION_WARNING });
    expect(NO_ISOLATION_WARNING).toMatch(/^NOT ISOLATED/);
  });

  it("the allow-list names no dir that holds users' files or sockets, and hides /etc's secrets", () => {
    for (const d of ["/", "/home", "/root", "/run", "/var", "/tmp", "/opt"])
      expect(SYSTEM_DIRS as readonly string[]).not.toContain(d);
    expect(ETC_SECRETS.every((p) => p.startsWith("/etc/"))).toBe(true);
    expect(ETC_SECRETS).toEqual(expect.arrayContaining(["/etc/shadow", "/etc/sudoers", "/etc/ssl/private"]));
  });
});
