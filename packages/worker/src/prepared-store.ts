import type {
  EnvLsView,
  PreparedManifest,
  RuntimeHandle,
  RuntimeSpec,
  RuntimeStartIntent,
  SandboxdClient,
} from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";
import type { ControlPlaneProvider } from "./providers/types.ts";

/**
 * Prepared environments on Cloudflare (docs/environments.md, "Per provider"):
 * a container's disk dies with it, so what setup produced is kept in R2 beside
 * the checkpoints, under its key:
 *
 *   environments/<key>/manifest.json      (customMetadata: repo, image, created_at, last_used_at)
 *   environments/<key>/workspace.tar.gz
 *   environments/<key>/home.tar.gz
 *
 * sandboxd in the container keeps a store dir of its own (/sandbox/prepared).
 * After a launch or resume, the preparations it saved there are copied into
 * R2, each artifact's sha256 and size checked against sandboxd's manifest
 * while it streams (the manifest is written last, so a half-copied entry is
 * never listed). Before the next launch's setup, the repo's most recently used
 * preparation is staged back into the container's store; sandboxd computes
 * the key after the clone, verifies the artifacts and restores it, or (another
 * key, a damaged object) runs setup.
 */

const PREFIX = "environments";
const KEY = /^[0-9a-f]{64}$/;
const ARTIFACT_NAMES = new Set(["workspace.tar.gz", "home.tar.gz"]);

/** One preparation as `alpine env ls --json` shows it. */
export type PreparedEntryView = EnvLsView["environments"][number] & { provider: "cloudflare" };

/**
 * Copies a stream into the hasher and R2's sized stream chunk by chunk (workerd cannot pipe a
 * stream made in JavaScript into one of its own TransformStreams).
 */
async function pump(
  body: ReadableStream<Uint8Array>,
  hasher: WritableStream<ArrayBuffer | ArrayBufferView>,
  sink: WritableStream<Uint8Array>,
): Promise<void> {
  const h = hasher.getWriter();
  const w = sink.getWriter();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await h.write(value);
      await w.write(value);
    }
    await h.close();
    await w.close();
  } catch (err) {
    await w.abort(err).catch(() => undefined); // ends the put; the read or write error is reported
    throw err;
  }
}

const hex = (buf: ArrayBuffer) =>
  [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** A manifest from sandboxd or R2 that names only known artifacts, or null. */
function validManifest(raw: unknown): PreparedManifest | null {
  const m = raw as Partial<PreparedManifest> | null;
  if (!m || typeof m !== "object" || typeof m.key !== "string" || !KEY.test(m.key)) return null;
  if (!Array.isArray(m.artifacts) || !Array.isArray(m.setup)) return null;
  for (const a of m.artifacts) {
    if (!ARTIFACT_NAMES.has(a?.name) || !/^[0-9a-f]{64}$/.test(a?.sha256 ?? "") || !(a.bytes >= 0))
      return null;
  }
  return m as PreparedManifest;
}

export class R2PreparedStore {
  constructor(private readonly bucket: R2Bucket) {}

  private keyOf(key: string, name: string): string {
    if (!KEY.test(key)) throw new AlpineError("usage_invalid", "not a prepared-environment key");
    return `${PREFIX}/${key}/${name}`;
  }

  async manifest(key: string): Promise<PreparedManifest | null> {
    const obj = await this.bucket.get(this.keyOf(key, "manifest.json"));
    if (!obj) return null;
    try {
      return validManifest(await obj.json());
    } catch {
      return null; // not JSON: as good as none (setup runs, and a new save replaces it)
    }
  }

  /** Every finished preparation (one with a manifest), least recently used first. */
  async list(): Promise<PreparedEntryView[]> {
    const out: PreparedEntryView[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: `${PREFIX}/`, cursor, include: ["customMetadata"] });
      for (const obj of page.objects) {
        const m = /^environments\/([0-9a-f]{64})\/manifest\.json$/.exec(obj.key);
        if (!m) continue;
        const manifest = await this.manifest(m[1]!);
        if (!manifest) continue;
        out.push({
          key: manifest.key,
          provider: "cloudflare",
          repo: manifest.repo ?? null,
          image: manifest.image,
          setup: manifest.setup,
          key_files: manifest.key_files ?? [],
          created_at: manifest.created_at,
          last_used_at:
            obj.customMetadata?.last_used_at ?? obj.customMetadata?.created_at ?? manifest.created_at,
          bytes: manifest.artifacts.reduce((n, a) => n + a.bytes, 0),
        });
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out.sort((a, b) => a.last_used_at.localeCompare(b.last_used_at));
  }

  /** The repo's most recently used preparation (the one worth staging before setup), or null. */
  async latestFor(repo: string, image?: string): Promise<PreparedEntryView | null> {
    const mine = (await this.list()).filter((e) => e.repo === repo);
    const sameImage = mine.filter((e) => !image || e.image === image);
    return (sameImage.length ? sameImage : mine).at(-1) ?? null;
  }

  private async putManifest(manifest: PreparedManifest, lastUsedAt: string): Promise<void> {
    await this.bucket.put(this.keyOf(manifest.key, "manifest.json"), JSON.stringify(manifest, null, 2), {
      httpMetadata: { contentType: "application/json" },
      customMetadata: {
        repo: manifest.repo,
        image: manifest.image,
        created_at: manifest.created_at,
        last_used_at: lastUsedAt,
      },
    });
  }

  /**
   * Stores one preparation: each artifact streamed into R2 while its sha256 is taken, then
   * checked against the manifest (size and sha256); the manifest goes last. A mismatch removes
   * what was written and throws.
   */
  async save(
    manifest: PreparedManifest,
    open: (name: string) => Promise<ReadableStream<Uint8Array>>,
  ): Promise<void> {
    for (const a of manifest.artifacts) {
      const key = this.keyOf(manifest.key, a.name);
      const body = await open(a.name);
      const hasher = new crypto.DigestStream("SHA-256");
      // FixedLengthStream: R2 needs the length up front, and a body of another size fails the put.
      const sized = new FixedLengthStream(a.bytes);
      try {
        const stored = this.bucket.put(key, sized.readable);
        const sha256 = await pump(body, hasher, sized.writable).then(
          async () => hex(await hasher.digest),
          async (err: unknown) => {
            await stored.catch(() => undefined); // the pump's error is the one to report
            throw err;
          },
        );
        await stored;
        if (sha256 !== a.sha256)
          throw new Error(`${a.name}: sha256 ${sha256} is not the manifest's ${a.sha256}`);
      } catch (err) {
        await this.bucket.delete(key).catch(() => undefined); // the save's own error is what matters
        throw new AlpineError(
          "checkpoint_failed",
          `prepared environment ${manifest.key.slice(0, 12)} not stored: ${(err as Error).message}`,
          { key: manifest.key, artifact: a.name },
        );
      }
    }
    await this.putManifest(manifest, new Date().toISOString());
  }

  /**
   * Stages a preparation into a runtime's store (artifacts, then the manifest) and marks it used.
   * A missing artifact is left out: sandboxd then finds the entry damaged and runs setup.
   */
  async stage(manifest: PreparedManifest, client: SandboxdClient): Promise<void> {
    for (const a of manifest.artifacts) {
      const obj = await this.bucket.get(this.keyOf(manifest.key, a.name));
      if (!obj) {
        console.warn("alpine: a prepared environment's artifact is missing in R2; setup will run", {
          key: manifest.key,
          artifact: a.name,
        });
        continue;
      }
      await client.putPreparedFile(manifest.key, a.name, obj.body);
    }
    const body = new Blob([JSON.stringify(manifest)]).stream();
    await client.putPreparedFile(manifest.key, "manifest.json", body);
    await this.putManifest(manifest, new Date().toISOString());
  }

  /** Removes preparations by key; returns those removed. */
  async remove(keys: readonly string[]): Promise<string[]> {
    const removed: string[] = [];
    for (const key of keys) {
      if (!KEY.test(key)) continue;
      const listed = await this.bucket.list({ prefix: `${PREFIX}/${key}/` });
      // The manifest first: an entry half removed is no longer listed or staged.
      await this.bucket.delete(this.keyOf(key, "manifest.json"));
      if (listed.objects.length) await this.bucket.delete(listed.objects.map((o) => o.key));
      if (listed.objects.length) removed.push(key);
    }
    return removed;
  }
}

/**
 * Copies the preparations a runtime saved into R2 (those R2 lacks, or holds with other
 * artifacts: a new save after a damaged one). Returns the keys copied.
 */
export async function collectPrepared(store: R2PreparedStore, client: SandboxdClient): Promise<string[]> {
  const copied: string[] = [];
  for (const raw of await client.listPrepared()) {
    const manifest = validManifest(raw);
    if (!manifest) continue;
    const held = await store.manifest(manifest.key);
    const same =
      held &&
      held.artifacts.length === manifest.artifacts.length &&
      held.artifacts.every((a) => manifest.artifacts.some((b) => b.name === a.name && b.sha256 === a.sha256));
    if (same) continue;
    await store.save(manifest, (name) => client.preparedFile(manifest.key, name));
    copied.push(manifest.key);
  }
  return copied;
}

/**
 * The provider the orchestrator uses, with one addition: once a sandbox's runtime has started
 * (before its clone and setup), the repo's latest preparation is staged into it. Never fails the
 * start: without it setup runs, as it would without a cache.
 */
export function stagingPreparations(
  provider: ControlPlaneProvider,
  store: R2PreparedStore,
  /** The repo of the sandbox a runtime is for (null: an export's short-lived runtime). */
  repoOf: (sandboxId: string) => string | null,
  connect: (endpoint: { url: string; token: string }) => SandboxdClient,
): ControlPlaneProvider {
  const start = async (handle: RuntimeHandle, spec: RuntimeSpec, intent?: RuntimeStartIntent) => {
    const started = await provider.start(handle, spec, intent);
    const repo = repoOf(spec.sandbox_id);
    if (!repo) return started;
    try {
      const entry = await store.latestFor(repo, spec.image);
      const manifest = entry && (await store.manifest(entry.key));
      const endpoint = manifest ? await provider.endpoint(started) : null;
      if (manifest && endpoint) await store.stage(manifest, connect(endpoint));
    } catch (err) {
      console.warn("alpine: staging the prepared environment failed; setup will run", {
        sandbox_id: spec.sandbox_id,
        error: String((err as Error).message ?? err),
      });
    }
    return started;
  };
  return new Proxy(provider, {
    get(target, prop) {
      if (prop === "start") return start;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
