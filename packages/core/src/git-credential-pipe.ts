import { AlpineError } from "./errors.ts";

/**
 * Git credentials for one git command, handed over a pipe.
 *
 * The process that runs git (sandboxd, or the CLI on the host) starts it with
 * one extra pipe as file descriptor 3 holding `username=…\npassword=…\n`, and
 * makes the shell function below git's only credential helper. git passes
 * fd 3 on to git-remote-http and from there to the helper, which answers
 * `get` by copying the pipe — only when git asks for the protocol and host
 * the credentials were given for (not after a redirect to another host);
 * `store` and `erase` are ignored. The secret is in the launcher's memory and
 * the pipe only: never argv, env, git config, a URL or disk.
 *
 * Why not a helper in Node that asks the launcher over loopback HTTP (what
 * alpine did before): starting Node took 50–200 ms per authenticated git
 * command, on every launch's fetch; `sh` takes about 2 ms.
 */

export interface PipeCredentials {
  username: string;
  password: string;
}

export interface PipeTarget {
  /** git's `protocol` attribute: http or https. */
  protocol: string;
  /** git's `host` attribute: host[:port], as in the remote's URL. */
  host: string;
}

/** The file descriptor git's child processes read the credentials from. */
export const CREDENTIAL_FD = 3;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The hosts git may name for `target`: as given, and with or without the protocol's default port. */
function hostsFor(target: PipeTarget): string[] {
  const protocol = target.protocol.toLowerCase();
  const host = target.host.toLowerCase();
  const port = protocol === "https" ? ":443" : protocol === "http" ? ":80" : null;
  const hosts = new Set([target.host, host]);
  if (port && host.endsWith(port)) hosts.add(host.slice(0, -port.length));
  else if (port) hosts.add(host + port);
  return [...hosts];
}

/**
 * The value of `credential.helper` (a `!` shell snippet). Only the protocol
 * and host are in it, single-quoted so a `case` pattern matches them
 * literally.
 */
export function credentialHelperSnippet(target: PipeTarget): string {
  if (/[\n\0]/.test(target.protocol + target.host)) {
    throw new AlpineError("usage_invalid", "a credential target must not contain newlines or NUL");
  }
  const hosts = hostsFor(target)
    .map((h) => quote(`host=${h}`))
    .join("|");
  return (
    `!f() { test "$1" = get || exit 0; p=; h=; ` +
    `while IFS= read -r l; do case "$l" in ${quote(`protocol=${target.protocol.toLowerCase()}`)}) p=1;; ` +
    `${hosts}) h=1;; esac; done; ` +
    `test -n "$p" && test -n "$h" && cat <&${CREDENTIAL_FD}; }; f`
  );
}

/** What goes down the pipe: git's credential format. */
export function credentialPayload(credentials: PipeCredentials): string {
  if (/[\n\0]/.test(credentials.username + credentials.password)) {
    throw new AlpineError("usage_invalid", "credentials must not contain newlines or NUL characters");
  }
  return `username=${credentials.username}\npassword=${credentials.password}\n`;
}
