/**
 * Proves the shared e2e fixtures work: the git smart-HTTP server (auth, clone,
 * push, gzip fetch) and the stub model — alone and driven by a real `opencode serve`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type GitServer,
  gitBasicAuthEnv,
  startGitServer,
  TEST_GIT_IDENTITY,
} from "./e2e/fixtures/git-server.ts";
import { type StubModel, startStubModel, stubOpencodeConfig } from "./e2e/fixtures/stub-model.ts";
import { freePort } from "./helpers/ports.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OPENCODE = path.join(REPO_ROOT, "node_modules/opencode-ai/bin/opencode.exe");

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env: Record<string, string> },
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

describe("git smart-HTTP server fixture", () => {
  const USER = "alice";
  const PASSWORD = "s3cret-git-token";
  let server: GitServer;
  let work: string;
  /** A git client environment that never reads the machine's git config. */
  let clientEnv: Record<string, string>;
  const git = (args: string[], cwd?: string, extra: Record<string, string> = {}) =>
    run("git", args, { cwd, env: { ...clientEnv, ...extra } });

  beforeAll(async () => {
    server = await startGitServer({ username: USER, password: PASSWORD });
    await server.createRepo("demo", { "README.md": "# demo\n", "src/a.txt": "a\n" });
    work = await tempDir("fixture-git-client-");
    clientEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: work,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_TERMINAL_PROMPT: "0",
      ...TEST_GIT_IDENTITY,
    };
  });

  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("creates repos and reads them back", async () => {
    const url = server.url("demo");
    expect(url).toBe(`http://127.0.0.1:${server.port}/demo.git`);
    expect(url).not.toContain("@");
    expect(await server.readRef("demo", "main")).toMatch(/^[0-9a-f]{40}$/);
    expect(await server.readRef("demo", "refs/heads/main")).toMatch(/^[0-9a-f]{40}$/);
    expect(await server.readRef("demo", "nope")).toBeNull();
    expect(await server.listFiles("demo", "main")).toEqual(["README.md", "src/a.txt"]);
    expect(await server.readFile("demo", "main", "src/a.txt")).toBe("a\n");

    await server.createRepo("org/other", { "x.md": "x" }, { defaultBranch: "trunk" });
    expect(await server.readRef("org/other", "trunk")).toMatch(/^[0-9a-f]{40}$/);
    expect(await server.readRef("org/other", "main")).toBeNull();
    await server.createRepo("empty", {});
    expect(await server.readRef("empty", "main")).toBeNull();
  });

  it("refuses clone without credentials (401) and with a wrong password", async () => {
    const before = server.requests.length;
    const res = await git(["clone", server.url("demo"), path.join(work, "anon")]);
    expect(res.code).not.toBe(0);
    const seen = server.requests.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => !r.authorized && r.status === 401)).toBe(true);
    expect(seen[0]?.path).toContain("/demo.git/info/refs?service=git-upload-pack");

    const mark = server.requests.length;
    const bad = await git(
      ["clone", server.url("demo"), path.join(work, "bad")],
      undefined,
      gitBasicAuthEnv(USER, "wrong"),
    );
    expect(bad.code).not.toBe(0);
    // git got a 401 and then wanted to prompt for a username (prompts are disabled).
    expect(bad.stderr).toContain("could not read Username");
    const badSeen = server.requests.slice(mark);
    expect(badSeen.length).toBeGreaterThan(0);
    expect(badSeen.every((r) => !r.authorized && r.status === 401)).toBe(true);
  });

  it("clones with credentials passed through GIT_CONFIG_* env (http.extraHeader)", async () => {
    const dir = path.join(work, "clone-header");
    const before = server.requests.length;
    const res = await git(["clone", server.url("demo"), dir], undefined, gitBasicAuthEnv(USER, PASSWORD));
    expect(res.stderr).not.toContain("fatal");
    expect(res.code).toBe(0);
    expect(await readFile(path.join(dir, "src/a.txt"), "utf8")).toBe("a\n");
    expect(server.requests.slice(before).every((r) => r.authorized)).toBe(true);
    // Nothing about the credentials was written into the clone.
    const config = await readFile(path.join(dir, ".git/config"), "utf8");
    expect(config).not.toContain(PASSWORD);
    expect(config).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString("base64"));
  });

  it("pushes (large, chunked) with credential.helper= and GIT_ASKPASS", async () => {
    const dir = path.join(work, "clone-askpass");
    const askpass = path.join(work, "askpass.sh");
    await writeFile(
      askpass,
      '#!/bin/sh\ncase "$1" in\n  Username*) printf "%s\\n" "$FIXTURE_GIT_USER" ;;\n  *) printf "%s\\n" "$FIXTURE_GIT_PASS" ;;\nesac\n',
    );
    await chmod(askpass, 0o700);
    const authEnv = { GIT_ASKPASS: askpass, FIXTURE_GIT_USER: USER, FIXTURE_GIT_PASS: PASSWORD };
    const clone = await git(
      ["-c", "credential.helper=", "clone", server.url("demo"), dir],
      undefined,
      authEnv,
    );
    expect(clone.code, clone.stderr).toBe(0);

    await writeFile(path.join(dir, "NEW.md"), "new file\n");
    await writeFile(path.join(dir, "blob.bin"), randomBytes(3 * 1024 * 1024)); // > http.postBuffer → chunked
    expect((await git(["add", "."], dir)).code).toBe(0);
    expect((await git(["commit", "-qm", "add files"], dir)).code).toBe(0);
    const head = (await git(["rev-parse", "HEAD"], dir)).stdout.trim();

    const before = server.requests.length;
    const push = await git(
      ["-c", "credential.helper=", "push", "origin", "HEAD:refs/heads/feature/x"],
      dir,
      authEnv,
    );
    expect(push.code, push.stderr).toBe(0);
    const pushes = server.requests.slice(before).filter((r) => r.path.endsWith("/git-receive-pack"));
    expect(pushes.length).toBeGreaterThan(0);
    expect(pushes.every((r) => r.authorized && r.status === 200)).toBe(true);

    expect(await server.readRef("demo", "feature/x")).toBe(head);
    expect(await server.listFiles("demo", "feature/x")).toEqual([
      "NEW.md",
      "README.md",
      "blob.bin",
      "src/a.txt",
    ]);
    expect(await server.readFile("demo", "feature/x", "NEW.md")).toBe("new file\n");
    expect(await server.readRef("demo", "main")).not.toBe(head);
  });

  it("serves fetches whose negotiation the client sends gzip-encoded", async () => {
    const auth = gitBasicAuthEnv(USER, PASSWORD);
    const a = path.join(work, "gz-a");
    const b = path.join(work, "gz-b");
    expect((await git(["clone", "-q", server.url("demo"), a], undefined, auth)).code).toBe(0);
    expect((await git(["clone", "-q", server.url("demo"), b], undefined, auth)).code).toBe(0);
    // Many local commits in b → many "have" lines → git gzips the upload-pack request.
    for (let i = 0; i < 60; i++) {
      await writeFile(path.join(b, "local.txt"), `local ${i}\n`);
      await git(["add", "local.txt"], b);
      await git(["commit", "-qm", `local ${i}`], b);
    }
    await writeFile(path.join(a, "upstream.txt"), "moved on\n");
    await git(["add", "upstream.txt"], a);
    await git(["commit", "-qm", "upstream"], a);
    expect((await git(["push", "-q", "origin", "HEAD:main"], a, auth)).code).toBe(0);

    const before = server.requests.length;
    const fetch = await git(["fetch", "origin"], b, auth);
    expect(fetch.code, fetch.stderr).toBe(0);
    expect((await git(["rev-parse", "origin/main"], b)).stdout.trim()).toBe(
      await server.readRef("demo", "main"),
    );
    const gz = server.requests.slice(before).filter((r) => r.contentEncoding === "gzip");
    expect(gz.length).toBeGreaterThan(0);
    expect(gz.every((r) => r.status === 200)).toBe(true);
  });
});

// ---------------------------------------------------------------------------

interface SseEvent {
  type: string;
  properties: Record<string, unknown>;
}

/** Reads an SSE response body, handing every `data:` JSON payload to `onEvent`. */
async function readSse(body: ReadableStream<Uint8Array>, onEvent: (e: SseEvent) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trimStart())
          .join("\n");
        if (data) onEvent(JSON.parse(data) as SseEvent);
      }
    }
  } catch {
    // aborted
  }
}

describe("stub model fixture", () => {
  const KEY = "sk-fixture-test-key";
  let stub: StubModel;

  beforeAll(async () => {
    stub = await startStubModel({ apiKey: KEY });
  });
  afterAll(async () => {
    await stub?.close();
  });

  const post = (body: unknown, key: string | null = KEY) =>
    fetch(`${stub.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    });
  const writeTool = {
    type: "function",
    function: {
      name: "write",
      parameters: {
        type: "object",
        properties: { content: { type: "string" }, filePath: { type: "string" } },
      },
    },
  };
  const system = {
    role: "system",
    content: "You are opencode.\n<env>\n  Working directory: /work/ws\n</env>",
  };

  it("requires the API key and lists its model", async () => {
    expect(stub.baseURL).toBe(`http://127.0.0.1:${stub.port}/v1`);
    const denied = await fetch(`${stub.baseURL}/models`);
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
    expect((await post({ messages: [] }, "wrong")).status).toBe(401);
    const ok = await fetch(`${stub.baseURL}/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { data: { id: string }[] }).data[0]?.id).toBe("stub-model");
    expect(stub.requests.filter((r) => r.kind === "unauthorized").length).toBe(2);
  });

  it("answers WRITE with a write tool call (absolute path), then with text once the result is in", async () => {
    const user = { role: "user", content: [{ type: "text", text: "WRITE notes/N.md hi there" }] };
    const first = await post({ model: "stub-model", messages: [system, user], tools: [writeTool] });
    const j = (await first.json()) as {
      choices: {
        message: { tool_calls?: { id: string; function: { name: string; arguments: string } }[] };
      }[];
    };
    const call = j.choices[0]?.message.tool_calls?.[0];
    expect(call?.function.name).toBe("write");
    expect(JSON.parse(call?.function.arguments ?? "{}")).toEqual({
      filePath: "/work/ws/notes/N.md",
      content: "hi there",
    });

    const followUp = await post({
      model: "stub-model",
      stream: true,
      tools: [writeTool],
      messages: [
        system,
        user,
        { role: "assistant", content: "", tool_calls: [call] },
        { role: "tool", tool_call_id: call?.id, content: "Wrote file successfully." },
      ],
    });
    expect(followUp.headers.get("content-type")).toContain("text/event-stream");
    const text = await followUp.text();
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    const chunks = text
      .split("\n\n")
      .filter((b) => b.startsWith("data: {"))
      .map(
        (b) => JSON.parse(b.slice(6)) as { choices: { delta: { content?: string; tool_calls?: unknown } }[] },
      );
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(content).toBe("Wrote notes/N.md.");
    expect(chunks.some((c) => c.choices[0]?.delta.tool_calls)).toBe(false);
  });

  it("streams slowly for SLEEP and answers title requests without acting on directives", async () => {
    const t0 = Date.now();
    const res = await post({
      stream: true,
      messages: [system, { role: "user", content: "SLEEP 1200 hello" }],
    });
    await res.text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1100);

    const title = await post({
      messages: [
        { role: "system", content: "You are a title generator. You output ONLY a thread title." },
        { role: "user", content: "Generate a title for this conversation:\n" },
        { role: "user", content: "SLEEP 5000 WRITE x.md y" },
      ],
    });
    const tj = (await title.json()) as { choices: { message: { content: string; tool_calls?: unknown } }[] };
    expect(tj.choices[0]?.message.content).toBe("Stub session");
    expect(tj.choices[0]?.message.tool_calls).toBeUndefined();
    expect(stub.requests.at(-1)?.kind).toBe("title");
  });

  it("answers SHELL with a bash tool call, quotes the tool result after it, and reports USAGE's tokens", async () => {
    const bashTool = {
      type: "function",
      function: {
        name: "bash",
        parameters: {
          type: "object",
          properties: { command: { type: "string" }, description: { type: "string" } },
        },
      },
    };
    const user = { role: "user", content: "USAGE 700 40 SHELL cat ~/.netrc; id -u" };
    const first = await post({ model: "stub-model", messages: [system, user], tools: [bashTool] });
    const j = (await first.json()) as {
      choices: { message: { tool_calls?: { function: { name: string; arguments: string } }[] } }[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    const call = j.choices[0]?.message.tool_calls?.[0];
    expect(call?.function.name).toBe("bash");
    expect(JSON.parse(call?.function.arguments ?? "{}")).toMatchObject({ command: "cat ~/.netrc; id -u" });
    expect(j.usage).toMatchObject({ prompt_tokens: 700, completion_tokens: 40 });
    expect(stub.requests.at(-1)?.toolResult).toBeUndefined();

    const tool = { role: "tool", tool_call_id: "call_1", content: "No such file\n1000" };
    const second = await post({ model: "stub-model", messages: [system, user, tool], tools: [bashTool] });
    const k = (await second.json()) as { choices: { message: { content: string; tool_calls?: unknown } }[] };
    expect(k.choices[0]?.message.content).toBe("Output: No such file\n1000");
    expect(k.choices[0]?.message.tool_calls).toBeUndefined();
    expect(stub.requests.at(-1)?.toolResult).toBe("No such file\n1000");

    // Without a bash tool on offer the stub says so instead of calling one.
    const none = await post({ model: "stub-model", messages: [system, user], tools: [writeTool] });
    const n = (await none.json()) as { choices: { message: { content: string } }[] };
    expect(n.choices[0]?.message.content).toBe("The bash tool is not available.");
  });

  it("fails on FAIL <status>", async () => {
    const res = await post({ messages: [{ role: "user", content: "FAIL 503" }] });
    expect(res.status).toBe(503);
  });
});

describe("stub model driven by a real `opencode serve`", () => {
  const KEY = "sk-fixture-opencode-key";
  const PASSWORD = "fixture-opencode-password";
  let stub: StubModel;
  let root: string;
  let proc: ChildProcess | undefined;

  beforeAll(async () => {
    stub = await startStubModel({ apiKey: KEY });
    root = await tempDir("fixture-opencode-");
  });
  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc?.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc?.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    }
    await stub?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("runs a WRITE prompt to completion (NOTES.md appears, the stub saw the key), then a SHELL prompt through the bash tool", async () => {
    const home = path.join(root, "home");
    await mkdir(home, { recursive: true });
    await mkdir(path.join(root, "ws"), { recursive: true });
    const ws = await realpath(path.join(root, "ws"));
    const gitEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      ...TEST_GIT_IDENTITY,
    };
    await writeFile(path.join(ws, "README.md"), "# ws\n");
    for (const args of [
      ["init", "-q", "-b", "main"],
      ["add", "."],
      ["commit", "-qm", "init"],
    ]) {
      expect((await run("git", args, { cwd: ws, env: gitEnv })).code).toBe(0);
    }

    const { model, config } = stubOpencodeConfig(stub.baseURL);
    expect(model).toBe("stub/stub-model");
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, ".config"),
      XDG_DATA_HOME: path.join(home, ".local/share"),
      XDG_STATE_HOME: path.join(home, ".local/state"),
      XDG_CACHE_HOME: path.join(home, ".cache"),
      OPENCODE_CONFIG_CONTENT: JSON.stringify({ ...config, permission: { "*": "allow", question: "deny" } }),
      // The key travels the way `alpine auth sync` delivers it: an auth.json entry under the provider id.
      OPENCODE_AUTH_CONTENT: JSON.stringify({ stub: { type: "api", key: KEY } }),
      OPENCODE_SERVER_PASSWORD: PASSWORD,
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      // OpenCode npm-installs @opencode-ai/plugin into its config dir in the background;
      // point that at a dead local port so no traffic leaves 127.0.0.1.
      npm_config_registry: "http://127.0.0.1:9/",
    };
    const child = spawn(OPENCODE, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
      cwd: ws,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc = child;
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`opencode did not start: ${out}${stderr}`)), 60_000);
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /opencode server listening on (http:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`opencode exited (${code}): ${out}${stderr}`));
      });
    });
    expect(url).toBe(`http://127.0.0.1:${port}`);

    const auth = `Basic ${Buffer.from(`opencode:${PASSWORD}`).toString("base64")}`;
    expect((await fetch(`${url}/global/health`)).status).toBe(401);
    const api = async (method: string, p: string, body?: unknown): Promise<Response> =>
      fetch(`${url}${p}`, {
        method,
        headers: { authorization: auth, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    const events: SseEvent[] = [];
    const ac = new AbortController();
    try {
      const ev = await fetch(`${url}/event`, { headers: { authorization: auth }, signal: ac.signal });
      expect(ev.status).toBe(200);
      expect(ev.headers.get("content-type")).toContain("text/event-stream");
      void readSse(ev.body as ReadableStream<Uint8Array>, (e) => events.push(e));

      const session = (await (await api("POST", "/session", {})).json()) as { id: string; directory: string };
      expect(session.id).toMatch(/^ses_/);
      expect(session.directory).toBe(ws);
      const prompt = await api("POST", `/session/${session.id}/prompt_async`, {
        parts: [{ type: "text", text: "WRITE NOTES.md hello from the agent" }],
      });
      expect(prompt.status).toBe(204);

      const deadline = Date.now() + 90_000;
      const isIdle = (e: SseEvent) => e.type === "session.idle" && e.properties.sessionID === session.id;
      while (!events.some(isIdle)) {
        if (Date.now() > deadline) throw new Error(`no session.idle; events: ${events.map((e) => e.type)}`);
        await new Promise((r) => setTimeout(r, 50));
      }

      expect(events.filter((e) => e.type === "session.error")).toEqual([]);
      expect(await readFile(path.join(ws, "NOTES.md"), "utf8")).toBe("hello from the agent");
      const edited = events.find((e) => e.type === "file.edited");
      expect(edited?.properties.file).toBe(path.join(ws, "NOTES.md"));

      const agentCalls = stub.requests.filter((r) => r.kind === "agent");
      expect(agentCalls.length).toBe(2); // tool call, then the final text
      expect(stub.requests.every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);
      expect(stub.requests.some((r) => r.kind === "title")).toBe(true);
      const body = agentCalls[0]?.body as { stream: boolean; tools: { function: { name: string } }[] };
      expect(body.stream).toBe(true);
      expect(body.tools.map((t) => t.function.name)).toContain("write");

      // SHELL: the agent runs a command through OpenCode's bash tool; the stub sees its output,
      // and the token counts USAGE asks for are what OpenCode records for the turn.
      const idleBefore = events.filter(isIdle).length;
      const shell = await api("POST", `/session/${session.id}/prompt_async`, {
        parts: [{ type: "text", text: "USAGE 1200 300 SHELL echo $((6*7)) | tee shell-out.txt" }],
      });
      expect(shell.status).toBe(204);
      while (events.filter(isIdle).length <= idleBefore) {
        if (Date.now() > deadline)
          throw new Error(`no second session.idle; events: ${events.map((e) => e.type)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(events.filter((e) => e.type === "session.error")).toEqual([]);
      expect(await readFile(path.join(ws, "shell-out.txt"), "utf8")).toBe("42\n");
      const shellCalls = stub.requests.filter((r) => r.kind === "agent").slice(2);
      expect(shellCalls.length).toBe(2);
      expect(shellCalls[0]?.toolResult).toBeUndefined();
      expect(shellCalls[1]?.toolResult).toContain("42");
      const messages = (await (await api("GET", `/session/${session.id}/message`)).json()) as {
        info: { role: string; tokens?: { input: number; output: number } };
        parts: { type: string; text?: string }[];
      }[];
      const last = messages.at(-1);
      expect(last?.info.role).toBe("assistant");
      expect(last?.info.tokens).toMatchObject({ input: 1200, output: 300 });
      expect(last?.parts.some((part) => part.type === "text" && part.text?.includes("Output: 42"))).toBe(
        true,
      );
    } finally {
      ac.abort();
    }
  });
});
