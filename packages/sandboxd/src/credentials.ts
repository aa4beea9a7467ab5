import { randomBytes } from "node:crypto";

export interface GitCredentials {
  username: string;
  password: string;
}

/** Where a grant may be used: git's `protocol` and `host` (host[:port]) attributes. */
export interface CredentialTarget {
  protocol: string;
  host: string;
}

interface Grant {
  credentials: GitCredentials;
  target: CredentialTarget;
}

/**
 * Hands per-command git credentials to the credential helper
 * (dist/git-credential.js) over loopback HTTP, so they live in sandboxd's
 * memory only: never in argv, env, config, URL or disk. A grant is keyed by a
 * random nonce and revoked when its git command exits.
 */
export class CredentialBroker {
  private readonly grants = new Map<string, Grant>();

  grant(credentials: GitCredentials, target: CredentialTarget): { nonce: string; revoke(): void } {
    const nonce = randomBytes(24).toString("base64url");
    this.grants.set(nonce, { credentials, target: normalise(target) });
    return { nonce, revoke: () => this.grants.delete(nonce) };
  }

  /**
   * The credentials for a helper request, or undefined. `attributes` is what git
   * wrote to the helper (key=value lines); a request for another protocol/host
   * than the grant's (e.g. after a redirect) gets nothing.
   */
  lookup(nonce: string, attributes: string): GitCredentials | undefined {
    const grant = this.grants.get(nonce);
    if (!grant) return undefined;
    const attrs = parseAttributes(attributes);
    const asked = normalise({ protocol: attrs.protocol ?? "", host: attrs.host ?? "" });
    if (asked.protocol !== grant.target.protocol || asked.host !== grant.target.host) return undefined;
    return grant.credentials;
  }

  get size(): number {
    return this.grants.size;
  }
}

function normalise(t: CredentialTarget): CredentialTarget {
  const protocol = t.protocol.toLowerCase().replace(/:$/, "");
  let host = t.host.toLowerCase();
  if (protocol === "https") host = host.replace(/:443$/, "");
  if (protocol === "http") host = host.replace(/:80$/, "");
  return { protocol, host };
}

export function parseAttributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
