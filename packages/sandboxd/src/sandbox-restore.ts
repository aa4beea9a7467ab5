import { createReadStream, mkdirSync, rmSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { AlpineError, toAlpineError } from "@alpine/core/errors";
import {
  type CheckpointArtifactName,
  type CheckpointManifestData,
  chainLinkArtifactName,
  type InitEvent,
  type RestoreArtifactResponse,
  type RestoreRequest,
  type SandboxdPhase,
} from "@alpine/core/sandboxd-api";
import { isArtifactName, isStageName } from "./checkpoint.ts";
import { writeHashed } from "./files.ts";
import { type ResolvedRepo, resolveRepo, safeShow } from "./git.ts";
import { unpackOpencodeData } from "./opencode-data.ts";
import type { Sandbox } from "./sandbox.ts";
import { restoreWorkspace, type UpstreamFetch } from "./workspace-snapshot.ts";

/** A validated restore, holding the sandbox's operation reservation until `restoreSandbox` ends. */
export interface RestorePlan {
  manifest: CheckpointManifestData;
  repo: ResolvedRepo;
  branch: string;
  /** Staged artifact files, verified against the manifest. */
  files: Partial<Record<CheckpointArtifactName, string>>;
  /** The earlier checkpoints' bundles the manifest builds on, oldest first, verified. */
  links: { checkpointId: string; path: string }[];
  credentials: RestoreRequest["credentials"];
  /** Releases the reservation planRestore took. */
  release: () => void;
  /** `launch --skip-setup`. */
  skipSetup: boolean;
}

/** Only a fresh sandbox (booting, or failed before it had a workspace) takes a restore. */
function requireRestorable(sb: Sandbox): void {
  if (sb.config.warm && !sb.adopted) {
    throw new AlpineError(
      "usage_invalid",
      "a warm sandboxd must be adopted (POST /v1/adopt) before a restore",
    );
  }
  if (sb.phase === "cloning" || sb.phase === "starting_agent" || sb.phase === "restoring") {
    throw new AlpineError("operation_in_progress", `the sandbox is ${sb.phase.replace("_", " ")}`, {
      phase: sb.phase,
    });
  }
  if (sb.phase === "ready" || !sb.workspace.isFresh()) {
    throw new AlpineError(
      "sandbox_identity_conflict",
      "this sandbox already has a workspace; a restore needs a fresh sandbox",
      { phase: sb.phase, workspace_dir: sb.config.workspace_dir },
    );
  }
}

/** PUT /v1/restore/artifacts/:name */
export async function stageRestoreArtifact(
  sb: Sandbox,
  name: string,
  body: IncomingMessage,
): Promise<RestoreArtifactResponse> {
  if (!isStageName(name)) {
    throw new AlpineError("usage_invalid", `'${safeShow(name)}' is not a checkpoint artifact name`, {
      artifact: safeShow(name),
    });
  }
  requireRestorable(sb);
  const end = sb.reserve("upload");
  try {
    const hashed = await sb.checkpoints.stage(name, body);
    sb.log.info("restore artifact staged", { artifact: name, ...hashed });
    return { name, ...hashed };
  } finally {
    end();
  }
}

/**
 * Validates a restore before anything runs: input, phase, and every staged
 * artifact against the manifest (sha256 and size). Reserves the sandbox.
 */
export async function planRestore(sb: Sandbox, req: RestoreRequest): Promise<RestorePlan> {
  let repo: ResolvedRepo;
  try {
    repo = resolveRepo(req.repo);
  } catch (err) {
    // A local repo that is gone does not stop a restore: it only becomes origin's URL.
    if (!req.repo.startsWith("/") || /[\u0000-\u001f\u007f]/.test(req.repo)) throw err;
    repo = { display: req.repo, url: req.repo, local: true, target: null };
  }
  const branch = await sb.git.checkBranch(req.branch);
  const { manifest } = req;
  const names = manifest.artifacts.map((a) => a.name);
  for (const n of names) {
    if (!isArtifactName(n)) {
      throw new AlpineError("usage_invalid", `the manifest names an unknown artifact '${safeShow(n)}'`, {
        artifact: safeShow(n),
      });
    }
  }
  if (!names.includes("workspace.bundle")) {
    throw new AlpineError("usage_invalid", "the manifest has no workspace.bundle", {});
  }
  requireRestorable(sb);
  const end = sb.reserve("restore");
  try {
    const files: RestorePlan["files"] = {};
    for (const a of manifest.artifacts) {
      const name = a.name as CheckpointArtifactName;
      const staged = await sb.checkpoints.stagedArtifact(name);
      if (!staged) {
        throw new AlpineError("checkpoint_missing", `artifact ${name} was not uploaded for this restore`, {
          artifact: name,
          checkpoint_id: manifest.checkpoint_id,
        });
      }
      if (staged.hashed.sha256 !== a.sha256 || staged.hashed.bytes !== a.bytes) {
        sb.checkpoints.dropStaged(name);
        throw new AlpineError(
          "checkpoint_checksum_mismatch",
          `checkpoint ${manifest.checkpoint_id}: artifact ${name} does not match its manifest (nothing was restored)`,
          {
            artifact: name,
            checkpoint_id: manifest.checkpoint_id,
            expected: { sha256: a.sha256, bytes: a.bytes },
            actual: staged.hashed,
          },
        );
      }
      files[name] = staged.path;
    }
    const links = await verifiedLinks(sb, manifest, req.chain ?? []);
    requireRestorable(sb);
    sb.phase = "restoring";
    return {
      manifest,
      repo,
      branch,
      files,
      links,
      credentials: req.credentials,
      release: end,
      skipSetup: req.skip_setup ?? false,
    };
  } catch (err) {
    end();
    throw err;
  }
}

/**
 * Every link of the chain a thin checkpoint builds on, checked before anything is restored: the
 * chain is the one its manifest names (ids and order), each link's staged bundle has the sha256
 * both its own manifest and the dependent's manifest record.
 */
async function verifiedLinks(
  sb: Sandbox,
  manifest: CheckpointManifestData,
  chain: CheckpointManifestData[],
): Promise<RestorePlan["links"]> {
  const wanted = manifest.depends_on?.checkpoints ?? [];
  if (chain.map((m) => m.checkpoint_id).join("\n") !== wanted.map((c) => c.checkpoint_id).join("\n")) {
    throw new AlpineError(
      "checkpoint_missing",
      `checkpoint ${manifest.checkpoint_id} builds on ${wanted.map((c) => c.checkpoint_id).join(", ") || "no checkpoint"}; the restore brought ${chain.map((m) => m.checkpoint_id).join(", ") || "none"}`,
      { checkpoint_id: manifest.checkpoint_id },
    );
  }
  const links: RestorePlan["links"] = [];
  for (const [i, link] of chain.entries()) {
    const want = wanted[i]!;
    const own = link.artifacts.find((a) => a.name === "workspace.bundle");
    const name = chainLinkArtifactName(link.checkpoint_id);
    const staged = await sb.checkpoints.stagedArtifact(name);
    if (!staged) {
      throw new AlpineError(
        "checkpoint_missing",
        `checkpoint ${link.checkpoint_id} was not uploaded for this restore`,
        {
          artifact: "workspace.bundle",
          checkpoint_id: link.checkpoint_id,
        },
      );
    }
    if (
      !own ||
      own.sha256 !== want.sha256 ||
      staged.hashed.sha256 !== want.sha256 ||
      staged.hashed.bytes !== own.bytes
    ) {
      sb.checkpoints.dropStaged(name);
      throw new AlpineError(
        "checkpoint_checksum_mismatch",
        `checkpoint ${link.checkpoint_id}: artifact workspace.bundle does not match what ${manifest.checkpoint_id} builds on (nothing was restored)`,
        {
          artifact: "workspace.bundle",
          checkpoint_id: link.checkpoint_id,
          expected: { sha256: want.sha256 },
          actual: staged.hashed,
        },
      );
    }
    links.push({ checkpointId: link.checkpoint_id, path: staged.path });
  }
  return links;
}

/**
 * Where a thin checkpoint's upstream commits come from: the host's repo cache when the provider
 * has one (brought up to date, shared with launches), else the repo's remote.
 */
function upstreamFetch(sb: Sandbox, plan: RestorePlan): UpstreamFetch | undefined {
  if ((plan.manifest.depends_on?.upstream ?? []).length === 0) return undefined;
  const credentials = plan.credentials ?? plan.repo.urlCredentials;
  const cache = sb.repoCache;
  return {
    remote: {
      url: plan.repo.url,
      credentials: credentials && plan.repo.target ? { credentials, target: plan.repo.target } : undefined,
    },
    cache: cache
      ? async () => {
          try {
            return (await cache.refresh(plan.repo, plan.credentials, Date.now()))?.dir ?? null;
          } catch (err) {
            // The remote stays: a cache that cannot be had only makes the restore fetch more.
            sb.log.warn("repo cache unavailable for the restore", {
              error: String((err as Error).message ?? err),
            });
            return null;
          }
        }
      : undefined,
  };
}

/** OpenCode started at sandboxd's boot on a checkpoint's data (config `prestart_restore`). */
export interface RestorePrestart {
  /** The data artifact it was started on. */
  sha256: string;
  /** Settles once the data is unpacked and OpenCode spawned (`started` its start), or null when it was not. */
  ready: Promise<{ started: Promise<void> } | null>;
}

/**
 * The launch that started this sandboxd will restore a checkpoint whose OpenCode data is `data`,
 * a file of the host's checkpoint store: it is copied privately while its sha256 and size are
 * checked, unpacked, and OpenCode starts now instead of once the artifacts are staged (its ≈1 s
 * boot then overlaps the staging and the workspace's restore). restoreSandbox keeps it only for a
 * manifest whose data artifact has this sha256. Anything that fails leaves the ordinary restore
 * to do it all, as without this.
 */
export function prestartRestore(sb: Sandbox, data: { path: string; sha256: string; bytes: number }): void {
  const ready = (async () => {
    mkdirSync(sb.checkpoints.root, { recursive: true, mode: 0o700 });
    const copy = join(sb.checkpoints.root, ".prestart-opencode-data.tar.gz");
    try {
      rmSync(copy, { force: true });
      const hashed = await writeHashed(createReadStream(data.path), copy);
      if (hashed.sha256 !== data.sha256 || hashed.bytes !== data.bytes) {
        sb.log.warn("not prestarting opencode: its data does not match the checkpoint's", {
          expected: { sha256: data.sha256, bytes: data.bytes },
          actual: hashed,
        });
        return null;
      }
      await unpackOpencodeData(sb.config.home_dir, copy);
      sb.opencode.prepare();
      const started = sb.opencode.start();
      // The restore awaits it (and reports its failure); until then it must not be unhandled.
      started.catch(() => {});
      return { started };
    } catch (err) {
      sb.log.info("not prestarting opencode", { error: String((err as Error).message ?? err) });
      return null;
    } finally {
      rmSync(copy, { force: true });
    }
  })();
  sb.restorePrestart = { sha256: data.sha256, ready };
}

/** Restore from a plan: workspace, OpenCode's data, then OpenCode. Never throws: the result says. */
export async function restoreSandbox(
  sb: Sandbox,
  plan: RestorePlan,
  emit: (ev: InitEvent) => void,
): Promise<void> {
  const t0 = Date.now();
  const setPhase = (phase: SandboxdPhase) => {
    sb.phase = phase;
    emit({ type: "phase", phase });
    sb.log.info("phase", { phase, ms: Date.now() - t0 });
  };
  sb.error = null;
  let started: Promise<void> | null = null;
  try {
    setPhase("restoring");
    // OpenCode started at boot on this very data (its sha256 is the verified manifest's) is kept.
    const pre = sb.restorePrestart;
    sb.restorePrestart = null;
    const dataArtifact = plan.manifest.artifacts.find((a) => a.name === "opencode-data.tar.gz");
    const early = pre ? await pre.ready : null;
    if (early && dataArtifact && plan.files["opencode-data.tar.gz"] && pre?.sha256 === dataArtifact.sha256) {
      started = early.started;
      sb.log.info("opencode was started at boot on the checkpoint's data");
    } else {
      // OpenCode's sessions first: it reads its database when it starts (a warm or prestarted one is stopped).
      if (sb.opencode.started) await sb.opencode.stop();
      if (early) await early.started.catch(() => {});
      const data = plan.files["opencode-data.tar.gz"];
      if (data) await unpackOpencodeData(sb.config.home_dir, data);
      sb.opencode.prepare();
      started = sb.opencode.start();
    }
    // Awaited (and its failure reported) below; this only keeps it from being an unhandled rejection meanwhile.
    started.catch(() => {});
    sb.git.yieldWhile(started);
    await restoreWorkspace(sb.workspace, {
      bundle: plan.files["workspace.bundle"]!,
      manifest: plan.manifest,
      branch: plan.branch,
      repo: plan.repo,
      links: plan.links,
      upstream: upstreamFetch(sb, plan),
    });
    // Ignored files (node_modules/) are not in a checkpoint: setup, or its prepared environment, again.
    await sb.prepareEnvironment(plan.repo, plan.skipSetup, setPhase, emit);
    setPhase("starting_agent");
    const [, ws] = await Promise.all([started, sb.workspaceStatus()]);
    // This OpenCode was started on the checkpoint's data and nothing but sandboxd has talked to
    // it (the UI proxy opens at ready; OpenCode resumes no turn at its boot), so no session of it
    // runs: the agent is idle by construction, as after a fresh init. Ready waits for OpenCode's
    // health answer, not for its event stream (the instance bootstrap for the workspace), which
    // opens in the background.
    sb.agent.assumeIdleUntilConnected();
    sb.agent.enable();
    await sb.opencode.waitAnswered(5000);
    // Tasks go on in the conversation the sandbox had (its newest session), found meanwhile.
    sb.agent.restoreHistory(sb.config.workspace_dir);
    sb.checkpoints.clearStaging();
    sb.phase = "ready";
    sb.log.info("phase", { phase: "ready", ms: Date.now() - t0, restored: plan.manifest.checkpoint_id });
    emit({ type: "result", ok: true, status: await sb.status(ws) });
  } catch (err) {
    const e = toAlpineError(err);
    // A failed setup keeps OpenCode for the UI of a sandbox kept for inspection (as init does).
    const inspect = e.reason === "setup_failed";
    if (started && !inspect) {
      await sb.opencode.stop();
      // Its failure is already part of `e` (or it was stopped just now): nothing more to report.
      await started.catch(() => {});
    }
    // Setup runs on the restored workspace: kept whole for inspection, like a checkout's.
    if (!inspect) sb.workspace.clearRestore();
    sb.phase = "failed";
    sb.error = e.toJSON();
    if (inspect) sb.agent.enable();
    sb.log.error("restore failed", { error: e.toJSON(), ms: Date.now() - t0 });
    emit({ type: "result", ok: false, error: e.toJSON() });
  } finally {
    plan.release();
  }
}
