import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { recorder } from "../reliability/harness.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";
import { providerUnderTest } from "./providers.ts";

const execFileAsync = promisify(execFile);

/**
 * What only a container can promise: the agent is not root and sees none of
 * the host's files; resource limits and labels are applied; a container killed
 * or removed behind alpine's back is reported by `status` and recovered by
 * `launch` without losing work (from its volume, or from the checkpoint when
 * the volume is gone too).
 */
const docker = inject("docker");
const p = providerUnderTest("docker");
let e: E2EEnv;
let id = "";
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd });
const dockerCmd = async (...args: string[]) =>
  (
    await execFileAsync("docker", args, { env: { ...process.env, DOCKER_HOST: docker.host ?? undefined } })
  ).stdout.trim();
const container = () => `alpine-${id}`;
const status = async () => (await alpine("status", "boxed", "--json")).json();
/** Rows for docs/reliability.md: the docker provider's faults, beside the local ones. */
const record = p.skipReason ? () => {} : recorder("docker-container");
/** Runs a recovering launch and says how long it took. */
const timedLaunch = async () => {
  const t0 = Date.now();
  const r = await alpine("launch", "boxed", "--json", "-v");
  return { r, ms: Date.now() - t0 };
};

beforeAll(async () => {
  if (p.skipReason) return;
  e = await makeEnv({
    yaml: [
      "sandbox:",
      "  provider: docker",
      `  image_profiles: {default: "${docker.image}", missing: "alpine-e2e-no-such-image:none"}`,
      "docker:",
      "  network: host",
      "  cpus: 1.5",
      "  memory: 1g",
    ],
  });
  Object.assign(e.env, p.env);
});
afterAll(async () => {
  if (!e) return;
  await alpine("teardown", "boxed", "--force", "--json").catch(() => {});
  await e.close();
});

describe.skipIf(p.skipReason)("a docker sandbox's container", () => {
  it("a profile whose image is not built is image_not_found, and nothing is created", async () => {
    const r = await alpine("launch", "nobox", "--repo", e.repoUrl, "--image-profile", "missing", "--json");
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.json()).toMatchObject({
      reason_code: "image_not_found",
      details: { image: "alpine-e2e-no-such-image:none" },
    });
    expect(await dockerCmd("ps", "-a", "--filter", "label=alpine.name=nobox", "--format", "{{.Names}}")).toBe(
      "",
    );
    expect(
      await dockerCmd("volume", "ls", "--filter", "label=alpine.name=nobox", "--format", "{{.Name}}"),
    ).toBe("");
    // Not even a record: the launch was refused before the sandbox existed.
    expect((await alpine("status", "nobox", "--json")).json().reason_code).toBe("sandbox_not_found");
  });

  it("a repository path on this machine is refused: the container could not read it", async () => {
    const local = join(e.root, "local-repo");
    await execFileAsync("git", ["init", "-q", local]);
    const r = await alpine("launch", "pathbox", "--repo", local, "--json");
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ reason_code: "repo_resolution_failed" });
    expect(r.json().error).toContain("--provider local");
  });

  it("launches with the labels and resource limits of the config", async () => {
    const r = await alpine(
      "launch",
      "boxed",
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE first.md checkpointed work",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    id = r.json().id;
    const inspect = JSON.parse(await dockerCmd("container", "inspect", container()))[0];
    expect(inspect.Config.Labels).toMatchObject({ "alpine.sandbox_id": id, "alpine.name": "boxed" });
    expect(inspect.HostConfig.NanoCpus).toBe(1.5e9);
    expect(inspect.HostConfig.Memory).toBe(1024 ** 3);
    expect(inspect.Mounts).toContainEqual(
      expect.objectContaining({ Type: "volume", Name: `alpine-${id}`, Destination: "/sandbox" }),
    );
    // Secrets went over stdin: the container's stored config holds no token or key.
    expect(JSON.stringify(inspect.Config.Env)).not.toMatch(/sk-E2E|ghp_E2E/);
    await waitFor("completion", async () => (await status()).state === "completed", { timeoutMs: 90_000 });
  });

  it("no process of the sandbox runs as root, and the host's files are out of its sight", async () => {
    const top = await dockerCmd("top", container(), "-eo", "uid,pid,comm");
    const rows = top
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    const comms = rows.map((r) => r[2]);
    // sandboxd is Node, whose main thread names itself MainThread from Node 24 on.
    expect(
      comms.some((c) => c === "node" || c === "MainThread"),
      comms.join(" "),
    ).toBe(true);
    expect(comms).toContain("opencode");
    for (const [uid, , comm] of rows) expect(uid, `${comm} runs as uid ${uid}`).not.toBe("0");
    expect(await dockerCmd("exec", container(), "id", "-u")).toBe("1000");
    // Paths that hold the user's secrets and alpine's state on the host: none exists in the container.
    for (const hostPath of [
      `${e.home}/.git-credentials`,
      e.alpineHome,
      `${e.home}/.local/share/opencode/auth.json`,
    ]) {
      const r = await execFileAsync("docker", ["exec", container(), "test", "-e", hostPath], {
        env: { ...process.env, DOCKER_HOST: docker.host ?? undefined },
      }).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
      expect(r, hostPath).toBe(1);
    }
    // And it cannot become root: no capabilities, no new privileges.
    const inspect = JSON.parse(await dockerCmd("container", "inspect", container()))[0];
    expect(inspect.HostConfig.CapDrop).toContain("ALL");
    expect(inspect.HostConfig.SecurityOpt).toContain("no-new-privileges");
  });

  it("killed mid-task: status says unavailable and how to recover; launch brings back the same sandbox with its work", async () => {
    const cp = await alpine("checkpoint", "boxed", "--json");
    expect(cp.code, cp.stdout + cp.stderr).toBe(0);
    const t = await alpine("task", "boxed", "SLEEP 8000 WRITE second.md interrupted", "--json");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    await waitFor("the agent to be busy", async () => (await status()).runtime.agent === "busy");
    await dockerCmd("kill", container());

    const s = await status();
    expect(s.runtime.probe_state).toBe("unavailable");
    expect(s.error).toMatchObject({ reason_code: "sandbox_unavailable", retryable: true });
    const human = await alpine("status", "boxed");
    expect(human.stdout).toContain("alpine launch boxed");

    const { r, ms } = await timedLaunch();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ id, state: expect.stringMatching(/running|completed/) });
    // From the volume, not the checkpoint: the work written before the kill is there.
    expect(r.stderr).not.toContain("restoring checkpoint");
    const after = await status();
    expect(after.runtime.probe_state).toBe("ok");
    expect(after.workspace.changed_files).toContainEqual({ path: "first.md", status: "added" });
    const done = await alpine("task", "boxed", "--wait", "--json", "WRITE third.md after the kill");
    expect(done.code, done.stdout + done.stderr).toBe(0);
    record({
      kind: "fault",
      fault: "docker: container killed mid-task (docker kill)",
      what_happened:
        "status: unavailable (sandbox_unavailable, says `alpine launch boxed`); `launch`: same container restarted on its volume; the next task ran",
      lost: "nothing (the interrupted turn's unwritten output only)",
      recovery_ms: ms,
      recovery: "alpine launch",
    });
  });

  it("container removed behind alpine's back: launch recreates it on the same volume", async () => {
    await dockerCmd("rm", "--force", container());
    expect((await status()).runtime.probe_state).toBe("unavailable");
    const { r, ms } = await timedLaunch();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).not.toContain("restoring checkpoint");
    const files = (await status()).workspace.changed_files.map((f: { path: string }) => f.path);
    expect(files).toEqual(expect.arrayContaining(["first.md", "third.md"]));
    record({
      kind: "fault",
      fault: "docker: container removed behind alpine's back (docker rm -f)",
      what_happened: "status: unavailable; `launch`: a new container on the same named volume",
      lost: "nothing",
      recovery_ms: ms,
      recovery: "alpine launch",
    });
  });

  it("container and volume both removed: launch restores the last verified checkpoint", async () => {
    const cp = (await alpine("checkpoint", "boxed", "--json")).json();
    expect(cp.verified).toBe(true);
    await dockerCmd("rm", "--force", container());
    await dockerCmd("volume", "rm", "--force", `alpine-${id}`);
    const { r, ms } = await timedLaunch();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ id, state: expect.stringMatching(/running|completed/) });
    expect(r.stderr).toContain(`restoring checkpoint ${cp.checkpoint_id}`);
    const files = (await status()).workspace.changed_files.map((f: { path: string }) => f.path);
    expect(files).toEqual(expect.arrayContaining(["first.md", "third.md"]));
    record({
      kind: "fault",
      fault: "docker: container and its volume removed",
      what_happened:
        "status: unavailable; `launch`: new container and volume, last verified checkpoint restored",
      lost: "nothing checkpointed (work after the last checkpoint would be)",
      recovery_ms: ms,
      recovery: "alpine launch (restore)",
    });
  });

  it("teardown removes the container and its volume", async () => {
    const r = await alpine("teardown", "boxed", "--force", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await p.leftovers(e.alpineHome, id)).toEqual([]);
  });
});
