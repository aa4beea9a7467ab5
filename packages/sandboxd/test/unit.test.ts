import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import { credentialHelperSnippet, credentialPayload } from "@alpine/core/git-credential-pipe";
import { describe, expect, it } from "vitest";
import { Auth, parseCookies, safeEqual } from "../src/auth.ts";
import { bwrapArgs, installPrefix } from "../src/bwrap.ts";
import { checkRef, GitRunner, resolveRepo } from "../src/git.ts";
import { parseNameStatus, parseNumstat } from "../src/git-output.ts";
import { Logger } from "../src/log.ts";
import { opencodeConfig } from "../src/opencode-env.ts";
import { tempDir } from "./helpers.ts";

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof AlpineError ? err.reason : "not-alpine";
  }
}

describe("bubblewrap layout", () => {
  const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;

  it.skipIf(!hasBwrap)(
    "an allow-list: system dirs and grants read-only, workspace/home/tmp writable, nothing else of the host",
    () => {
      // Not under /tmp: the sandbox's own tmp dir replaces /tmp, which would hide this layout anyway.
      const root = mkdtempSync("/var/tmp/alpine-bwrap-");
      const userHome = join(root, "user");
      const state = join(userHome, ".local", "state", "alpine"); // alpine's home, masked
      const home = join(state, "sandboxes", "s1", "home"); // inside a masked dir, like the real layout
      const ws = join(state, "sandboxes", "s1", "workspace");
      const tmp = join(state, "sandboxes", "s1", "tmp");
      for (const d of [home, ws, tmp]) mkdirSync(d, { recursive: true });
      writeFileSync(join(state, "state.db"), "secret-state");
      writeFileSync(join(userHome, ".git-credentials"), "secret-git");
      const granted = join(root, "granted");
      mkdirSync(join(granted, "keys"), { recursive: true });
      writeFileSync(join(granted, "lib.txt"), "granted-ok");
      writeFileSync(join(granted, "keys", "k"), "secret-masked");
      const layout = {
        workspace: ws,
        home,
        tmp,
        readOnly: [granted, "/does/not/exist"],
        mask: [state, join(granted, "keys"), "/does/not/exist"],
      };
      const args = bwrapArgs(layout);
      const script = [
        // The path down to the sandbox's dirs exists (empty dirs bwrap made); nothing beside it.
        `cat ${userHome}/.git-credentials 2>/dev/null; echo listed=$(ls -A ${userHome} ${state} | tr '\\n' ,)`,
        `cat ${state}/state.db 2>/dev/null`,
        `cat ${granted}/lib.txt`,
        `cat ${granted}/keys/k 2>/dev/null`,
        `touch ${granted}/x 2>/dev/null && echo grant-writable`,
        `touch /etc/alpine-escape 2>/dev/null && echo etc-writable`,
        `touch /alpine-escape 2>/dev/null && echo root-writable`,
        `touch ${state}/new 2>/dev/null && echo mask-writable`,
        `cat /etc/shadow 2>/dev/null | head -c 1 | grep -q . && echo shadow-read`,
        `test -e /root && echo root-home-visible; test -e /work && echo work-visible; test -e /run && echo run-visible`,
        `echo ws > ${ws}/ok && echo ws-ok`,
        `echo home > ${home}/ok && echo home-ok`,
        `echo tmp > /tmp/ok && echo tmp-ok`,
        `git --version >/dev/null && echo git-ok`,
        `echo pid=$$`,
      ].join("; ");
      const out = execFileSync("bwrap", [...args, "--", "/bin/sh", "-c", script], { encoding: "utf8" });
      for (const ok of ["ws-ok", "home-ok", "tmp-ok", "git-ok", "granted-ok"]) expect(out).toContain(ok);
      expect(out).not.toMatch(/secret|writable|shadow-read|visible/);
      expect(out).toMatch(/listed=.*\.local,.*sandboxes,\n/);
      expect(out).not.toMatch(/listed=.*(git-credentials|state\.db)/);
      expect(out).toMatch(/pid=\d\b/); // own pid namespace
      expect(readFileSync(join(ws, "ok"), "utf8")).toBe("ws\n");
      expect(readFileSync(join(home, "ok"), "utf8")).toBe("home\n");
      expect(readFileSync(join(tmp, "ok"), "utf8")).toBe("tmp\n");
      expect(existsSync("/etc/alpine-escape")).toBe(false);
      expect(existsSync("/alpine-escape")).toBe(false);
      expect(existsSync(join(granted, "x"))).toBe(false);
      expect(existsSync(join(state, "new"))).toBe(false);
      rmSync(root, { recursive: true, force: true });
    },
  );

  it("shows a tool's install prefix, never a user's whole home or the root", () => {
    const root = tempDir("alpine-prefix-");
    for (const d of ["opt/node/bin", "home/u/bin"]) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, "opt/node/bin/node"), "");
    writeFileSync(join(root, "home/u/bin/git"), "");
    expect(installPrefix(join(root, "opt/node/bin/node"), join(root, "home/u"))).toBe(join(root, "opt/node"));
    expect(installPrefix(join(root, "home/u/bin/git"), join(root, "home/u"))).toBeNull();
    expect(installPrefix("/does/not/exist/bin/x", undefined)).toBeNull();
  });

  it("orders mounts parents first, masks only what is visible, extra arguments go before --chdir", () => {
    const root = tempDir("alpine-bwrap-");
    mkdirSync(join(root, "m"), { recursive: true });
    const args = bwrapArgs({
      workspace: join(root, "ws"),
      home: "/home/x/h",
      tmp: join(root, "t"),
      readOnly: [],
      mask: [join(root, "m"), "/nonexistent-mask", "/etc"],
      extraArgs: ["--unshare-net"],
    }).join(" ");
    expect(args).not.toContain("--ro-bind / /");
    expect(args).toContain("--ro-bind /usr /usr");
    expect(args).not.toContain("nonexistent-mask");
    // Not visible (no grant covers it): nothing to hide.
    expect(args).not.toContain(`--tmpfs ${join(root, "m")}`);
    expect(args).toContain("--tmpfs /etc");
    expect(args.indexOf("--ro-bind /etc /etc")).toBeLessThan(args.indexOf("--tmpfs /etc"));
    expect(args.indexOf(`--bind ${join(root, "t")} /tmp`)).toBeLessThan(
      args.indexOf(`--bind ${join(root, "ws")}`),
    );
    expect(args).toContain("--remount-ro /etc");
    expect(args).toContain(
      "--remount-ro / --unshare-pid --die-with-parent --new-session --unshare-net --chdir",
    );
  });
});

describe("repo/ref validation", () => {
  it("accepts URLs, scp-like remotes and absolute paths", () => {
    expect(resolveRepo("https://github.com/a/b.git")).toMatchObject({
      url: "https://github.com/a/b.git",
      local: false,
      target: { protocol: "https", host: "github.com" },
    });
    expect(resolveRepo("git@github.com:a/b.git")).toMatchObject({ local: false, target: null });
    expect(resolveRepo("ssh://git@host:2222/a/b.git")).toMatchObject({ local: false });
    expect(resolveRepo(tmpdir())).toMatchObject({ local: true, url: tmpdir() });
  });

  it("moves credentials out of an https URL", () => {
    const r = resolveRepo("https://user:s3cr%40t@example.com:8443/a.git");
    expect(r.url).toBe("https://example.com:8443/a.git");
    expect(r.display).toBe("https://example.com:8443/a.git");
    expect(r.urlCredentials).toEqual({ username: "user", password: "s3cr@t" });
    expect(r.target).toEqual({ protocol: "https", host: "example.com:8443" });
  });

  it.each([
    "-uhttps://x",
    "--upload-pack=evil",
    "ext::sh -c evil",
    "fd::3",
    "foo::bar",
    "ftp://example.com/a.git",
    "relative/path",
    "https://example.com/\u0000x",
    "/does/not/exist/repo.git",
    "",
  ])("refuses %j", (repo) => {
    expect(reasonOf(() => resolveRepo(repo))).toBe("repo_resolution_failed");
  });

  it("refs may be revisions, never options", () => {
    expect(reasonOf(() => checkRef("main"))).toBeUndefined();
    expect(reasonOf(() => checkRef("v1.2^{}"))).toBeUndefined();
    expect(reasonOf(() => checkRef("--output=x"))).toBe("repo_resolution_failed");
    expect(reasonOf(() => checkRef("a b"))).toBe("repo_resolution_failed");
    expect(reasonOf(() => checkRef("a\u001bb"))).toBe("repo_resolution_failed");
  });
});

describe("git output parsing", () => {
  it("name-status -z with renames", () => {
    const out = [
      "M",
      "a.txt",
      "R087",
      "old name.txt",
      "new name.txt",
      "A",
      "dir/b",
      "D",
      "c",
      "T",
      "l",
      "",
    ].join("\0");
    expect(parseNameStatus(out)).toEqual([
      { path: "a.txt", status: "modified" },
      { path: "new name.txt", status: "renamed", old_path: "old name.txt" },
      { path: "dir/b", status: "added" },
      { path: "c", status: "deleted" },
      { path: "l", status: "modified" },
    ]);
  });

  it("numstat -z with renames and binaries", () => {
    const out = ["3\t1\ta.txt", "0\t0\t", "old.txt", "new.txt", "-\t-\timg.png", ""].join("\0");
    const m = parseNumstat(out);
    expect(m.get("a.txt")).toEqual({ insertions: 3, deletions: 1, binary: false });
    expect(m.get("new.txt")).toEqual({ insertions: 0, deletions: 0, binary: false });
    expect(m.get("img.png")).toEqual({ insertions: 0, deletions: 0, binary: true });
  });
});

describe("auth", () => {
  it("bearer tokens compare in constant time and exactly", () => {
    const a = new Auth("t".repeat(32), "sbx_1");
    expect(a.checkBearer(`Bearer ${"t".repeat(32)}`)).toBe(true);
    expect(a.checkBearer(`bearer ${"t".repeat(32)}`)).toBe(true);
    expect(a.checkBearer(`Bearer ${"t".repeat(31)}`)).toBe(false);
    expect(a.checkBearer(undefined)).toBe(false);
    expect(a.checkBearer("Bearer ")).toBe(false);
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abcd")).toBe(false);
  });

  it("login codes are single use and expire after 60 s", () => {
    const a = new Auth("t".repeat(32), "sbx_1");
    const t0 = 1_000_000;
    const { code, expires_at } = a.newLoginCode(t0);
    expect(Date.parse(expires_at)).toBe(t0 + 60_000);
    const session = a.redeem(code, t0 + 1000);
    expect(session).toBeTruthy();
    expect(a.redeem(code, t0 + 1001)).toBeUndefined();
    const late = a.newLoginCode(t0);
    expect(a.redeem(late.code, t0 + 60_000)).toBeUndefined();
    expect(a.redeem(late.code, t0 + 1)).toBeUndefined(); // consumed by the failed try
    expect(a.redeem("made-up", t0)).toBeUndefined();
    const cookie = a.setCookie(session!);
    expect(cookie).toBe(`alpine_session_sbx_1=${session}; HttpOnly; SameSite=Strict; Path=/`);
    // Sessions live 12 h from their login (at t0 + 1000 here).
    expect(a.checkCookie(`other=1; alpine_session_sbx_1=${session}`, t0 + 2000)).toBe(true);
    expect(a.checkCookie(`alpine_session_sbx_2=${session}`, t0 + 2000)).toBe(false);
    expect(a.checkCookie(`alpine_session_sbx_1=${session}x`, t0 + 2000)).toBe(false);
    expect(parseCookies("a=1; b = 2").get("b")).toBe("2");
  });
});

describe("git credentials over a pipe", () => {
  /** Runs the helper snippet the way git does (`sh -c`), with git's attributes on stdin and the payload piped to fd 3. */
  function askWithPipe(
    target: { protocol: string; host: string },
    action: string,
    attributes: string,
  ): string {
    const snippet = credentialHelperSnippet(target).slice(1);
    const payload = credentialPayload({ username: "u", password: "p'w$(x)" });
    // The payload reaches fd 3 the way sandboxd hands it over: a pipe, never a file or argv.
    const script = `printf '%s' "$PAYLOAD" | { ${snippet} "$@" 3<&0 <"$ATTRS"; }`;
    const attrsFile = join(mkdtempSync(join(tmpdir(), "alpine-cred-")), "attrs");
    writeFileSync(attrsFile, attributes);
    const r = spawnSync("sh", ["-c", script, "sh", action], {
      env: { PAYLOAD: payload, ATTRS: attrsFile, PATH: process.env.PATH },
    });
    rmSync(dirname(attrsFile), { recursive: true, force: true });
    return String(r.stdout);
  }

  const target = { protocol: "https", host: "example.com" };
  const answer = "username=u\npassword=p'w$(x)\n";

  it("answers get for its own protocol and host only", () => {
    expect(askWithPipe(target, "get", "protocol=https\nhost=example.com\npath=a.git\n")).toBe(answer);
    expect(askWithPipe(target, "get", "protocol=https\nhost=example.com:443\n")).toBe(answer);
    expect(askWithPipe(target, "get", "protocol=https\nhost=evil.example\n")).toBe("");
    expect(askWithPipe(target, "get", "protocol=http\nhost=example.com\n")).toBe("");
    expect(askWithPipe(target, "get", "host=example.com\n")).toBe("");
    expect(askWithPipe(target, "store", "protocol=https\nhost=example.com\n")).toBe("");
    expect(askWithPipe(target, "erase", "protocol=https\nhost=example.com\n")).toBe("");
    expect(
      askWithPipe(
        { protocol: "http", host: "127.0.0.1:8080" },
        "get",
        "protocol=http\nhost=127.0.0.1:8080\n",
      ),
    ).toBe(answer);
    expect(
      askWithPipe({ protocol: "http", host: "127.0.0.1:8080" }, "get", "protocol=http\nhost=127.0.0.1\n"),
    ).toBe("");
  });

  it("matches hosts literally (no glob, no quoting escape) and refuses newlines", () => {
    expect(
      askWithPipe({ protocol: "http", host: "[::1]:8080" }, "get", "protocol=http\nhost=[::1]:8080\n"),
    ).toBe(answer);
    expect(askWithPipe({ protocol: "http", host: "[::1]:8080" }, "get", "protocol=http\nhost=1:8080\n")).toBe(
      "",
    );
    expect(askWithPipe({ protocol: "https", host: "*" }, "get", "protocol=https\nhost=example.com\n")).toBe(
      "",
    );
    expect(askWithPipe({ protocol: "https", host: "a'b" }, "get", "protocol=https\nhost=a'b\n")).toBe(answer);
    expect(() => credentialHelperSnippet({ protocol: "https", host: "a\nb" })).toThrow(AlpineError);
    expect(() => credentialPayload({ username: "u", password: "a\nb" })).toThrow(AlpineError);
  });
});

describe("OpenCode config", () => {
  it("headless permissions under explicit ones; model wins; autoupdate off", () => {
    expect(opencodeConfig(undefined, "p/m")).toEqual({
      model: "p/m",
      permission: { "*": "allow", question: "deny" },
      autoupdate: false,
    });
    expect(
      opencodeConfig(
        { model: "x/y", permission: { bash: "ask" }, autoupdate: true, provider: { a: {} } },
        "p/m",
      ),
    ).toEqual({
      model: "p/m",
      permission: { "*": "allow", question: "deny", bash: "ask" },
      autoupdate: false,
      provider: { a: {} },
    });
    expect(opencodeConfig({ model: "x/y" }, undefined).model).toBe("x/y");
  });
});

describe("git yielding the CPU to OpenCode's boot", () => {
  /** The niceness (field 19 of /proc/<pid>/stat) of a process the command itself starts. */
  const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  // A git alias whose shell, half a second later, reads git's own stat (its parent's): by then the
  // renice right after the spawn has happened, whether git forked the shell before or after it.
  const statAlias = ["-c", "alias.stat=!sleep 0.5; cat /proc/$PPID/stat", "stat"];

  it("runs git at a lower priority while the work it yields to is pending, at ours after", async () => {
    const git = new GitRunner(new Logger(join(tempDir("alpine-nice-"), "log")));
    const ours = niceOf(readFileSync("/proc/self/stat", "utf8"));
    let finish: () => void = () => {};
    git.yieldWhile(new Promise<void>((resolve) => (finish = resolve)));
    expect(niceOf(await git.ok(statAlias))).toBe(Math.min(19, ours + 10));
    finish();
    await new Promise((r) => setImmediate(r));
    expect(niceOf(await git.ok(statAlias))).toBe(ours);
  });
});
