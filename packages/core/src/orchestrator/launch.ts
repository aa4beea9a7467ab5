import { AlpineError, toAlpineError } from "../errors.ts";
import { validateName } from "../names.ts";
import type { CheckpointManifest, Progress, RuntimeHandle, RuntimeSpec } from "../ports.ts";
import { newSandboxRecord } from "../records.ts";
import { validateBranchName, validateRef } from "../refs.ts";
import { chainLinkArtifactName, type SandboxdPhase } from "../sandboxd-api.ts";
import type { SandboxRecord, StoredEvent } from "../schemas.ts";
import type { SandboxSecret } from "../secrets.ts";
import { verifiedManifestChain } from "./checkpoint.ts";
import { ignoreFailure, move, nowIso, reach, update } from "./context.ts";
import {
  identityConflicts,
  launchNeedsProbe,
  launchResumes,
  launchStep,
  workspaceSource,
} from "./decisions/launch.ts";
import { getRecord, probe } from "./reading.ts";
import { withLease } from "./settle.ts";
import { sendTask } from "./task.ts";
import { teardown } from "./teardown.ts";
import type { LaunchInput, LaunchResult, OrchestratorDeps, SandboxdStatusView } from "./types.ts";

/** `launch`: creates, starts, restores, resumes or recovers a sandbox, then hands it a task. */

function unknownProfile(deps: OrchestratorDeps, profile: string): AlpineError {
  return new AlpineError("image_profile_unknown", `image profile '${profile}' is not configured`, {
    image_profile: profile,
    known: Object.keys(deps.config.sandbox.image_profiles),
  });
}

function runtimeSpec(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  auth: Record<string, unknown>,
  secrets: SandboxSecret[] = [],
): RuntimeSpec {
  const image = deps.config.sandbox.image_profiles[record.image_profile];
  if (!image) throw unknownProfile(deps, record.image_profile);
  return { sandbox_id: record.id, name: record.name, image, config: deps.config, auth, secrets };
}

export async function launch(
  deps: OrchestratorDeps,
  input: LaunchInput,
  progress: Progress,
): Promise<LaunchResult> {
  const name = validateName(input.name);
  if (input.ref !== undefined) validateRef(input.ref);
  const profile = input.image_profile ?? deps.config.sandbox.image_profile;
  if (!deps.config.sandbox.image_profiles[profile]) throw unknownProfile(deps, profile);
  let record = await deps.store.get(name);
  if (record) record = await replaceIfOtherIdentity(deps, record, input, progress);
  const base = record ?? (await createRecord(deps, name, input, profile));

  return withLease(deps, base, "launch", async (op) => {
    await reach(deps, "launch.lease_acquired");
    let current = await getRecord(deps, name);
    const resumed = launchResumes(current.state);
    const found = launchNeedsProbe(current.state) ? await probe(deps, current) : null;
    const step = launchStep(current.state, found);
    if (step === "recover") {
      current = await move(deps, current, "error", op.id, "runtime unavailable; recovering", {
        error: (found?.error ?? new AlpineError("sandbox_unavailable", "runtime not ready")).toJSON(),
      });
    } else if (step === "relaunch_interrupted_teardown") {
      // A teardown that died mid-way (its settlement stopped its runtime): launching brings it back.
      current = await move(deps, current, "error", op.id, "launched again after an interrupted teardown");
    }
    // A suspended sandbox goes back to the state it was suspended from.
    const ready = current.state === "suspended" ? (current.suspension?.from ?? "running") : "running";
    if (step !== "reuse")
      current = await provision(deps, current, op.id, progress, ready, input.skip_setup ?? false);

    await reach(deps, "launch.running");
    let taskAccepted = false;
    let sessionId: string | null = current.task?.session_id ?? null;
    if (input.task) {
      const result = await sendTask(deps, current, input.task, op.id);
      current = result.record;
      taskAccepted = true;
      sessionId = result.session_id;
    }
    progress.step("ready");
    return {
      record: current,
      reused: step === "reuse",
      resumed,
      task_accepted: taskAccepted,
      session_id: sessionId,
      operation_id: op.id,
    };
  });
}

/**
 * An existing sandbox launched with another repo, image profile or provider: refused, or with
 * --force-recreate torn down (forced) and removed. Returns the record to launch, or null.
 */
async function replaceIfOtherIdentity(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  input: LaunchInput,
  progress: Progress,
): Promise<SandboxRecord | null> {
  const conflicts = identityConflicts(record, input);
  if (conflicts.length === 0) return record;
  const { name } = record;
  if (!input.force_recreate) {
    throw new AlpineError(
      "sandbox_identity_conflict",
      `sandbox '${name}' already exists with another identity (${conflicts.join("; ")})`,
      {
        name,
        existing: { repo: record.repo, image_profile: record.image_profile, provider: record.provider },
      },
    );
  }
  await teardown(deps, name, { force: true }, progress);
  const gone = await deps.store.get(name);
  if (gone && !(await deps.store.remove(name, gone.version))) {
    throw new AlpineError("operation_in_progress", `sandbox '${name}' was changed by another command`, {});
  }
  return null;
}

/** Writes a new sandbox's record (state `new`), after checking what can be checked before. */
async function createRecord(
  deps: OrchestratorDeps,
  name: string,
  input: LaunchInput,
  profile: string,
): Promise<SandboxRecord> {
  const { config } = deps;
  if (!input.repo) {
    throw new AlpineError(
      "repo_resolution_failed",
      `sandbox '${name}' does not exist; pass --repo to create it`,
      {
        name,
      },
    );
  }
  // github.branch_prefix may make a name git refuses: say so before anything is created.
  const branch = validateBranchName(`${config.github.branch_prefix}/${name}`);
  const provider = input.provider ?? config.sandbox.provider;
  // What the provider can tell without creating anything (an image that is not built) is said now,
  // so a launch that cannot work leaves no sandbox behind.
  const image = config.sandbox.image_profiles[profile] as string;
  await deps.provider(provider).preflight?.({ image, image_profile: profile });
  const at = nowIso(deps);
  const created = newSandboxRecord(
    {
      id: deps.ids.sandboxId(),
      name,
      provider,
      repo: input.repo,
      ref: input.ref ?? null,
      branch,
      image_profile: profile,
    },
    at,
  );
  const created_note: StoredEvent = {
    sandbox_id: created.id,
    name,
    at,
    kind: "note",
    from: null,
    to: "new",
    operation_id: null,
    reason: `created for ${created.repo}`,
  };
  if (!(await deps.store.put(created, null, [created_note]))) {
    throw new AlpineError(
      "operation_in_progress",
      `sandbox '${name}' is being created by another command`,
      {},
    );
  }
  return created;
}

/**
 * new|destroyed|error → provisioning → running, with a fresh runtime. A sandbox whose runtime (and
 * workspace) is gone but that has a verified checkpoint is restored from it; otherwise sandboxd
 * clones, or reuses the workspace the provider kept.
 */
export async function provision(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  operationId: string,
  progress: Progress,
  /** Where a ready runtime leaves the record: `completed` for a resumed sandbox suspended there. */
  readyState: "running" | "completed" = "running",
  skipSetup = false,
): Promise<SandboxRecord> {
  const provider = deps.provider(record.provider);
  const checkpoint = record.checkpoint?.verified ? record.checkpoint : null;
  // A damaged checkpoint is refused before anything starts (never restored).
  const verified = checkpoint ? await verifiedManifestChain(deps, record, checkpoint.id) : null;
  const manifest = verified?.manifest ?? null;
  progress.step("provisioning");
  let current = await move(
    deps,
    record,
    "provisioning",
    operationId,
    record.state === "suspended" ? "resume" : "launch",
    { error: null, suspension: null },
  );
  await reach(deps, "launch.provisioning");
  const [auth, secrets] = await Promise.all([
    deps.authEntries(),
    deps.secretsFor?.(current.repo) ?? Promise.resolve([]),
  ]);
  const spec = runtimeSpec(deps, current, auth, secrets);
  let handle: RuntimeHandle | null = current.runtime?.handle ?? null;
  try {
    // The previous runtime may be gone already; create() adopts or replaces what is left.
    if (handle)
      await provider.stop(handle).catch(ignoreFailure(deps, `stopping the old runtime of '${record.name}'`));
    handle = await provider.create(spec);
    await reach(deps, "launch.runtime_created");
    const source = workspaceSource(
      manifest !== null,
      manifest !== null && (await provider.hasWorkspace(handle)),
    );
    // The host's credential helper is a process of its own: asked while sandboxd starts. A
    // restore needs them only for a checkpoint that builds on upstream (its commits may have to
    // come from the remote).
    const needsCredentials =
      source === "init" || (source === "restore" && (manifest?.depends_on?.upstream.length ?? 0) > 0);
    const credentials = needsCredentials
      ? deps.credentialsFor(current.repo).then((c) => c ?? undefined)
      : Promise.resolve(undefined);
    // Awaited below; until then a rejection must not be reported as unhandled.
    credentials.catch(() => {});
    current = await update(deps, current, { runtime: { handle, web_url: null } });
    // Told what comes next, a provider can start OpenCode with sandboxd: before an init, or on the
    // checkpoint's OpenCode data before a restore (sandboxd checks it against the manifest's).
    const data = manifest?.artifacts.find((a) => a.name === "opencode-data.tar.gz");
    const intent =
      source === "init"
        ? { init_repo: current.repo }
        : source === "restore" && data
          ? { restore_opencode_data: { sha256: data.sha256, bytes: data.bytes } }
          : undefined;
    handle = await provider.start(handle, spec, intent);
    await reach(deps, "launch.runtime_started");
    const endpoint = await provider.endpoint(handle);
    if (!endpoint) throw new AlpineError("agent_start_failed", "the sandbox runtime did not start");
    current = await update(deps, current, { runtime: { handle, web_url: endpoint.url } });
    const client = deps.connect(endpoint);
    // Phases arrive on sandboxd's stream; a fault point here stops this process mid-stream.
    const onPhase = (phase: SandboxdPhase) => {
      if (phase === "cloning") void reach(deps, "launch.cloning");
      if (phase === "setting_up") progress.step("running setup");
      if (phase === "starting_agent") {
        progress.step("starting agent");
        void reach(deps, "launch.agent_starting");
      }
    };
    // Setup's output, as it comes (also in `alpine logs`).
    const onOutput = (line: string) => progress.step(`setup: ${line}`);
    let status: SandboxdStatusView;
    if (source === "restore" && manifest) {
      progress.step(`restoring checkpoint ${manifest.checkpoint_id}`);
      await reach(deps, "launch.restoring");
      const chain = verified?.chain ?? [];
      await stageArtifacts(deps, record, manifest, chain, client.putRestoreArtifact.bind(client));
      // Only a checkpoint that builds on upstream needs the remote (and so its credentials).
      const upstreamCredentials = await credentials;
      status = await client.restore(
        {
          manifest,
          repo: current.repo,
          branch: current.branch,
          ...(chain.length > 0 ? { chain } : {}),
          ...(upstreamCredentials ? { credentials: upstreamCredentials } : {}),
          skip_setup: skipSetup,
        },
        onPhase,
        onOutput,
      );
    } else {
      progress.step("cloning");
      status = await client.init(
        {
          repo: current.repo,
          ref: current.ref ?? undefined,
          branch: current.branch,
          credentials: await credentials,
          skip_setup: skipSetup,
        },
        onPhase,
        onOutput,
      );
    }
    return await move(
      deps,
      current,
      readyState,
      operationId,
      source === "restore" ? `restored ${manifest?.checkpoint_id}` : "runtime ready",
      { agent: status.agent.state, last_activity: status.agent.last_activity ?? nowIso(deps) },
    );
  } catch (err) {
    const error = toAlpineError(err);
    // A failed setup leaves its sandbox running for inspection (logs, open, status): docs/environments.md.
    if (handle && error.reason !== "setup_failed")
      await provider
        .stop(handle)
        .catch(ignoreFailure(deps, `stopping the failed runtime of '${record.name}'`, "warn"));
    const latest = (await deps.store.get(record.name)) ?? current;
    await move(deps, latest, "error", operationId, `launch failed: ${error.reason}`, {
      error: error.toJSON(),
    });
    throw error;
  }
}

async function stageArtifacts(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  manifest: CheckpointManifest,
  chain: readonly CheckpointManifest[],
  put: (name: string, body: ReadableStream<Uint8Array>) => Promise<void>,
): Promise<void> {
  for (const link of chain) {
    await put(
      chainLinkArtifactName(link.checkpoint_id),
      await deps.checkpoints.getArtifact(record.id, link.checkpoint_id, "workspace.bundle"),
    );
  }
  for (const artifact of manifest.artifacts) {
    await put(
      artifact.name,
      await deps.checkpoints.getArtifact(record.id, manifest.checkpoint_id, artifact.name),
    );
  }
}
