import { credentialHelperSnippet, credentialPayload, type GitCredentials } from "@alpine/core";
import { execa, type Result } from "execa";

/**
 * Runs one git command on the host with credentials held only in this
 * process's memory: they go to git over a pipe (fd 3) that git's credential
 * helper reads, for the remote's protocol and host only
 * (core/src/git-credential-pipe.ts). Never in argv, env, git config, URL or disk.
 */
export async function gitWithCredentials(
  args: string[],
  opts: { cwd?: string; credentials?: GitCredentials; remote: string; env?: NodeJS.ProcessEnv },
): Promise<Result> {
  const env = { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "", SSH_ASKPASS: "", ...opts.env };
  if (!opts.credentials) {
    return execa("git", args, { cwd: opts.cwd, reject: false, env });
  }
  const url = new URL(opts.remote);
  const helper = credentialHelperSnippet({ protocol: url.protocol.slice(0, -1), host: url.host });
  const payload = credentialPayload(opts.credentials);
  // A Uint8Array on an extra fd is input: execa writes it down the pipe and closes it.
  return await execa("git", ["-c", "credential.helper=", "-c", `credential.helper=${helper}`, ...args], {
    cwd: opts.cwd,
    reject: false,
    env,
    stdio: ["pipe", "pipe", "pipe", new TextEncoder().encode(payload)],
  });
}

/** The host's git user, for export commits; a neutral default when none is configured. */
export async function hostGitAuthor(): Promise<{ name: string; email: string }> {
  const get = async (key: string) => {
    const r = await execa("git", ["config", "--get", key], { reject: false });
    return r.exitCode === 0 ? r.stdout.trim() : "";
  };
  const [name, email] = await Promise.all([get("user.name"), get("user.email")]);
  return { name: name || "alpine", email: email || "alpine@localhost" };
}
