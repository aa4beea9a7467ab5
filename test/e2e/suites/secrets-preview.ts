import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../../helpers/chromium.ts";
import { runCli } from "../../helpers/cli.ts";
import { type E2EEnv, fetchLink, filesContaining, makeEnv, processArgs, waitFor } from "../env.ts";
import { providerUnderTest } from "../providers.ts";

/**
 * Repo secrets and previews (issue 16, items 4 and 5) through the CLI, one sandbox per
 * provider: a secret set with `--agent` is in the agent's environment and one without is not
 * (nor anywhere else the agent can look: every process's environment it can see); neither value
 * is in logs, `--json` output, alpine's home, the sandbox's files, a checkpoint, an export or a
 * process's arguments. Then the agent starts a tiny HTTP server (page, event stream, WebSocket)
 * on a port; `status` lists it listening, and its one-time link opens it in Chromium on the
 * port's own origin, where the event stream and the WebSocket work; the used link is refused.
 */

/** The values, recognisable by the scans; the agent only ever prints a hash of the agent one. */
const AGENT_VALUE = "agentsecret-E2EAGENT0123456789abcdef";
const SETUP_VALUE = "setupsecret-E2ESETUP0123456789abcdef";
const NAME = "preview-app";

/** The server the agent starts: a page that opens an event stream and a WebSocket to its own origin. */
const SERVER_JS = `
const http = require("node:http"), crypto = require("node:crypto");
const page = '<!doctype html><title>preview</title><h1 id="h">preview-ok</h1><p id="sse">waiting</p><p id="ws">waiting</p>' +
  '<script>const es = new EventSource("/events"); es.onmessage = (e) => { document.getElementById("sse").textContent = e.data; es.close(); };' +
  'const ws = new WebSocket("ws://" + location.host + "/ws"); ws.onmessage = (e) => { document.getElementById("ws").textContent = e.data; };</script>';
const s = http.createServer((q, r) => {
  if (q.url === "/events") { r.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" }); r.write("data: sse-tick\\n\\n"); return; }
  if (q.url === "/whoami") { r.writeHead(200, { "content-type": "application/json" }); r.end(JSON.stringify({ cookie: q.headers.cookie ?? null, host: q.headers.host })); return; }
  r.writeHead(200, { "content-type": "text/html" }); r.end(page);
});
s.on("upgrade", (q, sock) => {
  const accept = crypto.createHash("sha1").update(q.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  const msg = Buffer.from("ws-hello"); sock.write(Buffer.concat([Buffer.from([0x81, msg.length]), msg]));
  sock.on("error", () => {});
});
s.listen(Number(process.argv[2]), "127.0.0.1");
`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

export function secretsPreviewSuite(kind: "local" | "docker"): void {
  const p = providerUnderTest(kind);
  let e: E2EEnv;
  let parent = "";
  let sandboxId = "";
  let appPort = 0;
  const outputs: string[] = [];
  const argSamples: string[] = [];
  const alpine = async (args: string[], input?: string) => {
    const r = await runCli(args, { env: e.env, cwd: e.cwd, input });
    outputs.push(r.stdout, r.stderr);
    argSamples.push(...processArgs());
    return r;
  };

  async function asAgent(command: string): Promise<string> {
    const before = e.model.requests.length;
    const r = await alpine(["task", NAME, "--wait", "--json", `SHELL ${command}`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const got = e.model.requests
      .slice(before)
      .filter((q) => q.kind === "agent" && q.toolResult !== undefined)
      .map((q) => q.toolResult)
      .at(-1);
    expect(got, "the agent's bash tool ran and its output came back").toBeDefined();
    return got ?? "";
  }

  beforeAll(async () => {
    if (p.skipReason) return;
    // Outside /tmp: a local sandbox's own /tmp hides the host's, so a scan there would prove nothing.
    parent = join("/var/tmp", `alpine-secrets-${process.pid}`);
    mkdirSync(parent, { recursive: true });
    e = await makeEnv({ yaml: p.yaml, parent });
    Object.assign(e.env, p.env);
    appPort = await freePort();
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });

  afterAll(async () => {
    if (!e) return;
    await runCli(["teardown", NAME, "--force", "--json"], { env: e.env, cwd: e.cwd }).catch(() => {});
    await e.close();
    rmSync(parent, { recursive: true, force: true });
  });

  describe.skipIf(p.skipReason)(`secrets and previews of a ${kind} sandbox`, () => {
    it("secrets set reads the value from stdin, stores it 0600 and ls shows names, never values", async () => {
      const agent = await alpine(
        ["secrets", "set", "AGENT_TOKEN", "--repo", e.repoUrl, "--agent", "--json"],
        `${AGENT_VALUE}\n`,
      );
      expect(agent.code, agent.stderr).toBe(0);
      expect(agent.json()).toEqual({ name: "AGENT_TOKEN", scope: e.repoUrl, agent: true, replaced: false });
      const setup = await alpine(["secrets", "set", "SETUP_TOKEN", "--global", "--json"], SETUP_VALUE);
      expect(setup.code, setup.stderr).toBe(0);
      expect(setup.json()).toMatchObject({ name: "SETUP_TOKEN", scope: "global", agent: false });
      // A name the sandbox sets itself, and a missing value, are refused.
      const reserved = await alpine(["secrets", "set", "PATH", "--global", "--json"], "x");
      expect(reserved.code).toBe(1);
      expect(reserved.json().reason_code).toBe("usage_invalid");
      expect(reserved.stdout + reserved.stderr).toContain("set by the sandbox itself");
      const empty = await alpine(["secrets", "set", "EMPTY", "--global", "--json"], "");
      expect(empty.code).toBe(1);
      const ls = await alpine(["secrets", "ls", "--json"]);
      expect(ls.code).toBe(0);
      expect(
        ls
          .json()
          .secrets.map((s: { name: string; scope: string; agent: boolean }) => [s.name, s.scope, s.agent]),
      ).toEqual([
        ["SETUP_TOKEN", "global", false],
        ["AGENT_TOKEN", e.repoUrl, true],
      ]);
      expect(statSync(join(e.alpineHome, "secrets.json")).mode & 0o777).toBe(0o600);
    });

    it("the agent gets the --agent secret in its environment and not the setup-only one, in no process it can see", async () => {
      const r = await alpine(["launch", NAME, "--repo", e.repoUrl, "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      sandboxId = r.json().id;
      // The setup value is split so that neither the command nor the agent's shell holds it whole
      // in an argument; `$A$B` exists only inside the shell's own `case` match (a grep pattern would be
      // an argument, which the scans' `ps` samples could catch while the loop runs).
      const half = SETUP_VALUE.length >> 1;
      const got = await asAgent(
        [
          `printf 'AGENT_SHA=%s\\n' "$(printf %s "$AGENT_TOKEN" | sha256sum | cut -c1-64)"`,
          `printenv SETUP_TOKEN >/dev/null && echo SETUP=present || echo SETUP=absent`,
          `A='${SETUP_VALUE.slice(0, half)}'; B='${SETUP_VALUE.slice(half)}'; n=0; hits=0`,
          `for f in /proc/[0-9]*/environ; do n=$((n+1)); c=$(tr '\\0' '\\n' < $f 2>/dev/null); case "$c" in *"$A$B"*) hits=$((hits+1));; esac; done`,
          `echo SCANNED=$n HITS=$hits`,
          "echo notes by the agent > NOTES.md",
        ].join("; "),
      );
      expect(got).toContain(`AGENT_SHA=${createHash("sha256").update(AGENT_VALUE).digest("hex")}`);
      expect(got).toContain("SETUP=absent");
      expect(got).toMatch(/SCANNED=[1-9]\d* HITS=0/);
    });

    it("the agent's server on a port: status lists it listening", async () => {
      const b64 = Buffer.from(SERVER_JS).toString("base64");
      const got = await asAgent(
        `echo ${b64} | base64 -d > "$TMPDIR/preview-server.js" && (nohup node "$TMPDIR/preview-server.js" ${appPort} </dev/null >/dev/null 2>&1 &) ; sleep 1; echo STARTED`,
      );
      expect(got).toContain("STARTED");
      const ports = await waitFor(
        `port ${appPort} listed as listening`,
        async () => {
          const s = (await alpine(["status", NAME, "--json"])).json();
          const entry = s.runtime.ports.find((x: { port: number }) => x.port === appPort);
          return entry?.listening ? s.runtime.ports : null;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      expect(ports).toContainEqual({ port: appPort, declared: false, listening: true });
      const human = await alpine(["status", NAME]);
      expect(human.stdout).toContain(`port      ${appPort} listening: alpine open ${NAME} --port ${appPort}`);
    });

    it("open --port gives a one-time link to the port's own origin: the page, its event stream and WebSocket work in Chromium; the used link is refused", async () => {
      const r = await alpine(["open", NAME, "--port", String(appPort), "--print", "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = r.json();
      expect(out).toMatchObject({ name: NAME, opened: false, port: appPort });
      const link: string = out.web_url;
      expect(link).toMatch(new RegExp(`^http://${appPort}-${NAME}\\.localhost:\\d+/__alpine/auth/\\S+$`));
      const origin = new URL(link).origin;

      // Without the link: 401 with what to run; the UI's origin does not serve the app either.
      const anon = await fetchLink(`${origin}/`, { signal: AbortSignal.timeout(20_000) });
      expect(anon.status).toBe(401);
      expect(await anon.text()).toContain(`alpine open ${NAME} --port ${appPort}`);
      // A UI login code does not open a preview.
      const ui = (await alpine(["open", NAME, "--print", "--json"])).json().web_url as string;
      const code = new URL(ui).pathname.split("/").at(-1);
      const crossed = await fetchLink(`${origin}/__alpine/auth/${code}`, { redirect: "manual" });
      expect(crossed.status).toBe(401);

      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        const resp = await page.goto(link, { timeout: 30_000 });
        expect(resp?.status()).toBe(200);
        expect(new URL(page.url()).origin).toBe(origin);
        expect(new URL(page.url()).pathname).toBe("/");
        await page.waitForFunction(() => document.getElementById("h")?.textContent === "preview-ok", null, {
          timeout: 20_000,
        });
        await page.waitForFunction(() => document.getElementById("sse")?.textContent === "sse-tick", null, {
          timeout: 20_000,
        });
        await page.waitForFunction(() => document.getElementById("ws")?.textContent === "ws-hello", null, {
          timeout: 20_000,
        });
        mkdirSync(join(process.cwd(), "test-results"), { recursive: true });
        await page.screenshot({ path: join(process.cwd(), "test-results", `preview-${kind}.png`) });
        // The session cookie is the port's own (HttpOnly) and the app never sees it.
        const cookies = await page.context().cookies();
        expect(cookies.find((c) => c.name.startsWith("alpine_preview_"))).toMatchObject({ httpOnly: true });
        const whoami = await page.evaluate(async () => (await fetch("/whoami")).json());
        expect(whoami.cookie ?? "").not.toContain("alpine_");

        const replay = await (await browser.newPage()).goto(link);
        expect(replay?.status()).toBe(401);
      } finally {
        await browser.close();
      }
    });

    it("neither secret is in logs, --json output, alpine's home, the sandbox's files, a checkpoint, an export or a process's arguments", async () => {
      const logs = await alpine(["logs", NAME, "--json"]);
      expect(logs.code).toBe(0);
      const ckpt = await alpine(["checkpoint", NAME, "--json"]);
      expect(ckpt.code, ckpt.stdout + ckpt.stderr).toBe(0);
      const patchFile = join(e.root, "export.patch");
      const exp = await alpine(["export", NAME, "--patch", patchFile, "--json"]);
      outputs.push(readFileSync(patchFile, "utf8"));
      expect(exp.code, exp.stdout + exp.stderr).toBe(0);
      expect(readFileSync(patchFile, "utf8")).toContain("notes by the agent");
      const secrets = [AGENT_VALUE, SETUP_VALUE];
      const store = join(e.alpineHome, "secrets.json");
      expect(filesContaining(e.alpineHome, secrets, (f) => f === store)).toEqual([]);
      const sandbox = await p.snapshot(e.alpineHome, sandboxId);
      try {
        expect(filesContaining(sandbox.dir, secrets)).toEqual([]);
      } finally {
        sandbox.done();
      }
      for (const out of outputs) for (const s of secrets) expect(out).not.toContain(s);
      for (const args of argSamples) for (const s of secrets) expect(args).not.toContain(s);
      // The store really holds them (the scans above looked for the right strings).
      expect(readFileSync(store, "utf8")).toContain(SETUP_VALUE);
    });
  });
}
