import { env } from "cloudflare:workers";
import type { PreparedManifest, RuntimeHandle, RuntimeSpec, SandboxdClient } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { collectPrepared, R2PreparedStore, stagingPreparations } from "../src/prepared-store.ts";
import type { ControlPlaneProvider } from "../src/providers/types.ts";

/**
 * Prepared environments in R2 (prepared-store.ts) against workerd's local R2. sandboxd is a
 * double here (its list and files over HTTP); what sandboxd does with a staged entry (verify,
 * restore or run setup) is sandboxd's own test (packages/sandboxd/test/environment.test.ts).
 */

const hex = (buf: ArrayBuffer) =>
  [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha = async (b: Uint8Array) => hex(await crypto.subtle.digest("SHA-256", b));
const bytesOf = (s: string) => new TextEncoder().encode(s);
const streamOf = (b: Uint8Array) => new Blob([b]).stream();
const text = async (s: ReadableStream<Uint8Array>) => new Response(s).text();

async function preparation(key: string, repo: string, files: Record<string, string>) {
  const artifacts = [];
  for (const [name, content] of Object.entries(files))
    artifacts.push({ name, sha256: await sha(bytesOf(content)), bytes: bytesOf(content).length });
  const manifest: PreparedManifest = {
    schema_version: 1,
    key,
    repo,
    image: "img",
    setup: ["sh setup.sh"],
    key_files: ["package-lock.json"],
    created_at: new Date().toISOString(),
    paths: ["build"],
    artifacts,
  };
  return manifest;
}

/** sandboxd as the control plane sees it: the entries of its store, and what is staged into it. */
function sandboxdDouble(entries: { manifest: PreparedManifest; files: Record<string, string> }[]) {
  const staged: { key: string; name: string; body: string }[] = [];
  const client = {
    listPrepared: async () => entries.map((e) => e.manifest),
    preparedFile: async (key: string, name: string) => {
      const e = entries.find((x) => x.manifest.key === key);
      return streamOf(bytesOf(e?.files[name] ?? ""));
    },
    putPreparedFile: async (key: string, name: string, body: ReadableStream<Uint8Array>) => {
      staged.push({ key, name, body: await text(body) });
      return { sha256: "", bytes: 0 };
    },
  };
  return { client: client as unknown as SandboxdClient, staged };
}

const K1 = "1".repeat(64);
const K2 = "2".repeat(64);
const K3 = "3".repeat(64);

describe("prepared environments in R2", () => {
  it("copies a runtime's preparation under environments/<key>/, manifest last, listed as the CLI's entry", async () => {
    const store = new R2PreparedStore(env.CHECKPOINTS);
    const files = { "workspace.tar.gz": "ws-bytes", "home.tar.gz": "home-bytes-longer" };
    const manifest = await preparation(K1, "https://git.example/a.git", files);
    const sandboxd = sandboxdDouble([{ manifest, files }]);
    expect(await collectPrepared(store, sandboxd.client)).toEqual([K1]);
    const obj = await env.CHECKPOINTS.get(`environments/${K1}/workspace.tar.gz`);
    expect(await obj?.text()).toBe("ws-bytes");
    const listed = (await store.list()).find((e) => e.key === K1);
    expect(listed).toMatchObject({
      provider: "cloudflare",
      repo: "https://git.example/a.git",
      image: "img",
      setup: ["sh setup.sh"],
      key_files: ["package-lock.json"],
      bytes: "ws-bytes".length + "home-bytes-longer".length,
    });
    // Already held with the same artifacts: not copied again.
    expect(await collectPrepared(store, sandboxd.client)).toEqual([]);
    expect(await store.remove([K1])).toEqual([K1]);
    expect((await env.CHECKPOINTS.list({ prefix: `environments/${K1}/` })).objects).toHaveLength(0);
  });

  it("refuses a copy whose bytes do not match the manifest's sha256: nothing is stored or listed", async () => {
    const store = new R2PreparedStore(env.CHECKPOINTS);
    const manifest = await preparation(K2, "https://git.example/b.git", {
      "workspace.tar.gz": "what setup saved",
      "home.tar.gz": "home",
    });
    // Same length, other content: only the sha256 tells.
    const sandboxd = sandboxdDouble([
      { manifest, files: { "workspace.tar.gz": "WHAT SETUP SAVED", "home.tar.gz": "home" } },
    ]);
    await expect(collectPrepared(store, sandboxd.client)).rejects.toThrow(/sha256/);
    expect(await env.CHECKPOINTS.head(`environments/${K2}/workspace.tar.gz`)).toBeNull();
    expect(await env.CHECKPOINTS.head(`environments/${K2}/manifest.json`)).toBeNull();
    expect((await store.list()).map((e) => e.key)).not.toContain(K2);
  });

  it("stages the repo's latest preparation into a new runtime, artifacts first; a corrupt or missing object still reaches sandboxd as it is, for it to refuse", async () => {
    const store = new R2PreparedStore(env.CHECKPOINTS);
    const files = { "workspace.tar.gz": "ws", "home.tar.gz": "home" };
    const manifest = await preparation(K3, "https://git.example/c.git", files);
    await collectPrepared(store, sandboxdDouble([{ manifest, files }]).client);
    // A corrupt object in R2 (bit rot, a bad write) and a missing one.
    await env.CHECKPOINTS.put(`environments/${K3}/workspace.tar.gz`, "rotten");
    await env.CHECKPOINTS.delete(`environments/${K3}/home.tar.gz`);

    const sandboxd = sandboxdDouble([]);
    const started: string[] = [];
    const provider = {
      kind: "cloudflare",
      start: async (h: RuntimeHandle) => {
        started.push("start");
        return h;
      },
      endpoint: async () => ({ url: "http://rt1", token: "t" }),
      fetchFor: () => fetch,
    } as unknown as ControlPlaneProvider;
    const spec = (id: string) => ({ sandbox_id: id, image: "img" }) as unknown as RuntimeSpec;
    const wrapped = stagingPreparations(
      provider,
      store,
      (id) => (id === "sbx_mine" ? "https://git.example/c.git" : null),
      () => sandboxd.client,
    );
    // An export's short-lived runtime (not the sandbox's own) gets nothing.
    await wrapped.start({ a: 1 }, spec("sbx_mine_xexport"));
    expect(sandboxd.staged).toEqual([]);
    await wrapped.start({ a: 1 }, spec("sbx_mine"));
    expect(started).toEqual(["start", "start"]);
    expect(sandboxd.staged.map((s) => s.name)).toEqual(["workspace.tar.gz", "manifest.json"]);
    expect(sandboxd.staged[0]?.body).toBe("rotten");
    // The manifest keeps the sha256 of what setup saved: sandboxd's check fails and setup runs.
    const sent = JSON.parse(sandboxd.staged[1]?.body ?? "{}") as PreparedManifest;
    expect(sent.artifacts.find((a) => a.name === "workspace.tar.gz")?.sha256).toBe(await sha(bytesOf("ws")));
    await store.remove([K3]);
  });

  it("a staging that fails never fails the runtime's start", async () => {
    const store = new R2PreparedStore(env.CHECKPOINTS);
    const files = { "workspace.tar.gz": "ws", "home.tar.gz": "home" };
    const manifest = await preparation(K1, "https://git.example/d.git", files);
    await collectPrepared(store, sandboxdDouble([{ manifest, files }]).client);
    const failing = {
      putPreparedFile: async () => {
        throw new Error("sandboxd refused");
      },
    } as unknown as SandboxdClient;
    const provider = {
      start: async (h: RuntimeHandle) => h,
      endpoint: async () => ({ url: "http://rt1", token: "t" }),
      fetchFor: () => fetch,
    } as unknown as ControlPlaneProvider;
    const wrapped = stagingPreparations(
      provider,
      store,
      () => "https://git.example/d.git",
      () => failing,
    );
    await expect(wrapped.start({ b: 2 }, { sandbox_id: "x", image: "img" } as never)).resolves.toEqual({
      b: 2,
    });
    await store.remove([K1]);
  });
});
