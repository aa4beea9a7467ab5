import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import type { GitCredentials } from "@alpine/core";
import { execa, type Result } from "execa";

const require = createRequire(import.meta.url);

/** sandboxd's credential helper: asks a loopback URL for the credentials, prints them to git. */
function credentialHelper(): string {
  return join(dirname(require.resolve("@alpine/sandboxd/package.json")), "dist", "git-credential.js");
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs one git command on the host with credentials held only in this
 * process's memory: a one-shot 127.0.0.1 endpoint behind a random path hands
 * them to the credential helper for the remote's protocol and host only.
 * Never in argv, env, git config, URL or disk.
 */
export async function gitWithCredentials(
  args: string[],
  opts: { cwd?: string; credentials?: GitCredentials; remote: string; env?: NodeJS.ProcessEnv },
): Promise<Result> {
  const baseEnv = { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "", SSH_ASKPASS: "", ...opts.env };
  if (!opts.credentials) {
    return execa("git", args, { cwd: opts.cwd, reject: false, env: baseEnv });
  }
  const target = new URL(opts.remote);
  const nonce = randomBytes(24).toString("base64url");
  const credentials = opts.credentials;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
      if (body.length > 65536) req.destroy();
    });
    req.on("end", () => {
      const attrs = Object.fromEntries(
        body
          .split("\n")
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])
          .filter(([k]) => k),
      );
      const sameTarget = attrs.protocol === target.protocol.slice(0, -1) && attrs.host === target.host;
      if (req.url !== `/credential/${nonce}` || req.method !== "POST" || !sameTarget) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ username: credentials.username, password: credentials.password }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    return await execa(
      "git",
      [
        "-c",
        "credential.helper=",
        "-c",
        `credential.helper=!${quote(process.execPath)} ${quote(credentialHelper())}`,
        ...args,
      ],
      {
        cwd: opts.cwd,
        reject: false,
        env: { ...baseEnv, ALPINE_CREDENTIAL_URL: `http://127.0.0.1:${port}/credential/${nonce}` },
      },
    );
  } finally {
    server.close();
    server.closeAllConnections();
  }
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
