import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { httpStatusOf } from "../src/control-plane-api.ts";
import { AlpineError, toAlpineError } from "../src/errors.ts";
import { FAULT_STEPS } from "../src/faults.ts";
import { CREDENTIAL_FD, credentialHelperSnippet, credentialPayload } from "../src/git-credential-pipe.ts";
import { declaredCapabilities, providerDescriptor } from "../src/provider-kinds.ts";
import { isReasonCode, REASON_CODES, REASONS } from "../src/reasons.ts";
import { normaliseRecord } from "../src/records.ts";
import { validateBranchName, validateRef } from "../src/refs.ts";
import { PASS_THROUGH_ENV, passThroughEnv } from "../src/sandbox-env.ts";

function reasonOf(
  fn: () => unknown,
): { reason: string; message: string; details: Record<string, unknown> } | null {
  try {
    fn();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(AlpineError);
    const e = err as AlpineError;
    return { reason: e.reason, message: e.message, details: e.details };
  }
}

/** Runs the helper snippet as git would (`get`, request on stdin), with `secret` on fd 3. */
function runHelper(snippet: string, action: string, request: string, secret: string): Promise<string> {
  expect(snippet.startsWith("!")).toBe(true);
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", `${snippet.slice(1)} "$@"`, "git-credential", action], {
      stdio: ["pipe", "pipe", "inherit", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (c) => {
      out += c;
    });
    child.on("error", reject);
    // A helper that declines exits non-zero with no output, which git reads as "no credentials".
    child.on("close", (code) => resolve(code === 0 || out === "" ? out : `exit ${code}: ${out}`));
    const fd3 = child.stdio[CREDENTIAL_FD] as NodeJS.WritableStream;
    fd3.on("error", () => undefined); // the helper may exit without reading it
    fd3.end(secret);
    // Likewise stdin: a helper that declines may exit before git's request is written (EPIPE).
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(request);
  });
}

describe("git credential pipe", () => {
  const secret = credentialPayload({ username: "x-access-token", password: "p'a$s w" });

  it("formats the payload in git's credential format", () => {
    expect(secret).toBe("username=x-access-token\npassword=p'a$s w\n");
    expect(CREDENTIAL_FD).toBe(3);
  });

  it("refuses credentials or targets with a newline or NUL", () => {
    expect(reasonOf(() => credentialPayload({ username: "a\nb", password: "p" }))?.reason).toBe(
      "usage_invalid",
    );
    expect(reasonOf(() => credentialPayload({ username: "a", password: "p\0" }))?.reason).toBe(
      "usage_invalid",
    );
    expect(reasonOf(() => credentialHelperSnippet({ protocol: "https", host: "a\nb" }))?.reason).toBe(
      "usage_invalid",
    );
    expect(reasonOf(() => credentialHelperSnippet({ protocol: "https\0", host: "h" }))?.reason).toBe(
      "usage_invalid",
    );
  });

  it("names the host with and without the protocol's default port, quoted", () => {
    const https = credentialHelperSnippet({ protocol: "HTTPS", host: "GitHub.com" });
    expect(https).toContain("'protocol=https'");
    expect(https).toContain("'host=GitHub.com'|'host=github.com'|'host=github.com:443'");
    const http = credentialHelperSnippet({ protocol: "http", host: "git.local:80" });
    expect(http).toContain("'host=git.local:80'|'host=git.local')");
    const other = credentialHelperSnippet({ protocol: "ftp", host: "h" });
    expect(other).toContain("'host=h')");
    expect(other).not.toContain(":443");
    const quoted = credentialHelperSnippet({ protocol: "https", host: "it's" });
    expect(quoted).toContain(`'host=it'\\''s'`);
  });

  it("answers get with the pipe only for the protocol and host it was given", async () => {
    const snippet = credentialHelperSnippet({ protocol: "https", host: "github.com" });
    expect(await runHelper(snippet, "get", "protocol=https\nhost=github.com\npath=o/r.git\n", secret)).toBe(
      secret,
    );
    expect(await runHelper(snippet, "get", "protocol=https\nhost=github.com:443\n", secret)).toBe(secret);
    expect(await runHelper(snippet, "get", "protocol=https\nhost=evil.example\n", secret)).toBe("");
    expect(await runHelper(snippet, "get", "protocol=http\nhost=github.com\n", secret)).toBe("");
    expect(await runHelper(snippet, "store", "protocol=https\nhost=github.com\n", secret)).toBe("");
    expect(await runHelper(snippet, "erase", "protocol=https\nhost=github.com\n", secret)).toBe("");
  });

  it("matches a host with shell metacharacters literally", async () => {
    const snippet = credentialHelperSnippet({ protocol: "https", host: "*" });
    expect(await runHelper(snippet, "get", "protocol=https\nhost=github.com\n", secret)).toBe("");
    expect(await runHelper(snippet, "get", "protocol=https\nhost=*\n", secret)).toBe(secret);
  });
});

describe("httpStatusOf", () => {
  it.each([
    ["unauthorized", 1, 401],
    ["sandbox_not_found", 1, 404],
    ["checkpoint_missing", 1, 404],
    ["operation_in_progress", 2, 409],
    ["sandbox_identity_conflict", 2, 409],
    ["teardown_requires_force", 1, 409],
    ["teardown_blocked", 1, 409],
    ["sandbox_not_running", 1, 409],
    ["export_retryable_state", 2, 409],
    ["export_state_blocked", 1, 409],
    ["checkpoint_checksum_mismatch", 2, 422],
    ["sandbox_unavailable", 2, 503],
    ["provider_unavailable", 2, 503],
    ["agent_start_failed", 2, 503],
    ["config_invalid", 1, 400],
    ["internal_error", 2, 500],
    ["not_a_reason", 1, 400],
  ] as const)("%s (exit %i) → %i", (reason, exit, status) => {
    expect(httpStatusOf(reason, exit)).toBe(status);
  });

  it("gives every reason code a 4xx or 5xx that agrees with its exit code by default", () => {
    for (const code of REASON_CODES) {
      const status = httpStatusOf(code, REASONS[code].exit);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });
});

describe("AlpineError", () => {
  it("takes exit code, retryable and hint from the reason table", () => {
    const err = new AlpineError("sandbox_unavailable", "down", { a: 1 });
    expect(err.exitCode).toBe(REASONS.sandbox_unavailable.exit);
    expect(err.retryable).toBe(REASONS.sandbox_unavailable.retryable);
    expect(err.hint).toBe(REASONS.sandbox_unavailable.hint);
    expect(err.name).toBe("AlpineError");
    expect(err.toJSON()).toEqual({
      error: "down",
      exit_code: err.exitCode,
      reason_code: "sandbox_unavailable",
      retryable: err.retryable,
      details: { a: 1 },
    });
  });

  it("round-trips through JSON", () => {
    const err = new AlpineError("push_rejected", "rejected", { branch: "b" });
    const back = AlpineError.fromJSON(JSON.parse(JSON.stringify(err)));
    expect(back.reason).toBe("push_rejected");
    expect(back.message).toBe("rejected");
    expect(back.details).toEqual({ branch: "b" });
  });

  it("rebuilds what it can from a partial or foreign error object", () => {
    const none = AlpineError.fromJSON(null);
    expect([none.reason, none.message, none.details]).toEqual(["internal_error", "unknown error", {}]);
    const odd = AlpineError.fromJSON({ reason_code: "nope", error: 5, details: "x" }, "control_plane_error");
    expect([odd.reason, odd.message, odd.details]).toEqual(["control_plane_error", "unknown error", {}]);
  });

  it("turns any thrown value into an AlpineError", () => {
    const same = new AlpineError("task_failed", "f");
    expect(toAlpineError(same)).toBe(same);
    const cause = new TypeError("boom");
    const wrapped = toAlpineError(cause);
    expect([wrapped.reason, wrapped.message, wrapped.cause]).toEqual(["internal_error", "boom", cause]);
    expect(toAlpineError("text").message).toBe("text");
    expect(toAlpineError(undefined).message).toBe("undefined");
  });

  it("knows which strings are reason codes", () => {
    expect(isReasonCode("config_invalid")).toBe(true);
    expect(isReasonCode("toString")).toBe(false);
    expect(isReasonCode(1)).toBe(false);
    expect(REASON_CODES).toContain("internal_error");
  });
});

describe("validateBranchName", () => {
  it.each(["main", "alpine/hello", "feature/x.y_z-1", "a".repeat(200), "v1.2"])("accepts %s", (branch) => {
    expect(validateBranchName(branch)).toBe(branch);
  });

  it.each([
    ["", "it is empty"],
    ["a".repeat(201), "it is longer than 200 characters"],
    ["-x", "it starts with '-'"],
    ["refs/heads/x", "it names a ref outside refs/heads"],
    ["HEAD", "it names a ref outside refs/heads"],
    ["@", "it names a ref outside refs/heads"],
    ["a b", "it contains a space"],
    ["a~1", "one of ~^:?*[\\"],
    ["a:b", "one of ~^:?*[\\"],
    ["a\\b", "one of ~^:?*[\\"],
    ["a\u007fb", "a control character"],
    ["a..b", "it contains '..'"],
    ["a@{1}", "it contains '@{'"],
    ["a//b", "it has an empty path component"],
    ["/a", "it has an empty path component"],
    ["a/", "it has an empty path component"],
    ["a.", "it ends with '.'"],
    ["a/.b", "a component starts with '.'"],
    [".a", "a component starts with '.'"],
    ["a.lock/b", "a component ends with '.lock'"],
    ["x/a.lock", "a component ends with '.lock'"],
  ])("refuses %j: %s", (branch, why) => {
    const err = reasonOf(() => validateBranchName(branch));
    expect(err?.reason).toBe("branch_invalid");
    expect(err?.message).toContain(why);
    expect(err?.details.branch).toBe(branch.slice(0, 100));
  });
});

describe("validateRef", () => {
  it.each(["main", "v1.0", "refs/pull/1/head", "abc123", "HEAD~2"])("accepts %s", (ref) => {
    expect(validateRef(ref)).toBe(ref);
  });

  it.each([
    ["", "it is empty"],
    ["r".repeat(256), "longer than 255"],
    ["--upload-pack=x", "it starts with '-'"],
    ["a b", "a space or a control character"],
    ["a\tb", "a space or a control character"],
  ])("refuses %j: %s", (ref, why) => {
    const err = reasonOf(() => validateRef(ref));
    expect(err?.reason).toBe("ref_not_found");
    expect(err?.message).toContain(why);
  });

  it("shows a control character as '?' in the error", () => {
    const err = reasonOf(() => validateRef("a\nb"));
    expect(err?.details.ref).toBe("a?b");
    expect(err?.message).toBe("'a?b' is not a usable ref: it contains a space or a control character");
  });
});

describe("small tables", () => {
  it("fills in record fields added after a record was written, keeping those present", () => {
    const rec = normaliseRecord({ id: "sb_1", name: "n", task: { x: 1 } as never });
    expect(rec).toMatchObject({
      id: "sb_1",
      name: "n",
      checkpoint: null,
      export: null,
      error: null,
      runtime: null,
    });
    expect(rec.task).toEqual({ x: 1 });
  });

  it("describes each provider kind", () => {
    expect(providerDescriptor("local").runs_in).toBe("cli");
    expect(providerDescriptor("cloudflare").runs_in).toBe("control_plane");
    expect(declaredCapabilities("docker")).toEqual({
      kind: "docker",
      isolation: "container",
      persistent_workspace: true,
    });
    expect(declaredCapabilities("cloudflare").persistent_workspace).toBe(false);
  });

  it("lists fault steps and pass-through variables without duplicates", () => {
    expect(new Set(FAULT_STEPS).size).toBe(FAULT_STEPS.length);
    expect(FAULT_STEPS.every((s) => /^(launch|checkpoint|export|teardown)\.[a-z_]+$/.test(s))).toBe(true);
    expect(PASS_THROUGH_ENV).toContain("HTTPS_PROXY");
    expect(PASS_THROUGH_ENV).not.toContain("PATH");
  });

  it("hands on only the pass-through variables that are set", () => {
    const env = { HTTPS_PROXY: "http://proxy:3128", no_proxy: "", PATH: "/bin", GITHUB_TOKEN: "ghp_x" };
    expect(passThroughEnv(env)).toEqual({ HTTPS_PROXY: "http://proxy:3128" });
  });
});
