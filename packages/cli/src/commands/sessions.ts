import { defineCommand, defineGroup } from "./define.ts";

/** identity: an admin's view of the Cloudflare control plane's sign-in sessions, and revocation. */
export default defineGroup({
  name: "sessions",
  summary: "list and revoke people's sign-in sessions on the Cloudflare control plane (admins)",
  commands: [
    defineCommand({
      name: "ls",
      summary: "list sign-in sessions: who, web or cli, created, expires, revoked",
      description:
        "Lists the control plane's sign-in sessions (browser cookies of the GitHub sign-in and CLI tokens of `alpine login`), newest first: their id, whose, kind, when created and when they expire, and when they were revoked. Tokens are never shown (the control plane keeps only their hash; the id is a prefix of it). Admins only (`forbidden` otherwise).",
      flags: {
        user: {
          type: "string",
          value: "login",
          description: "only this person's sessions: a GitHub login or a principal id (github:alice)",
        },
      },
      examples: ["alpine sessions ls", "alpine sessions ls --user alice", "alpine sessions ls --json"],
      output: "sessions-ls",
      handler: () => import("./sessions-run.ts").then((m) => m.sessionsLs),
    }),
    defineCommand({
      name: "revoke",
      args: [{ name: "id", description: "the session's id (from `alpine sessions ls`)", optional: true }],
      summary: "revoke one session, or every session of a user (--user)",
      description:
        "Revokes a session on the control plane: its next request, from a browser or the CLI, is refused (`unauthorized`) and its holder must sign in again (which the allow-list decides). Give a session's id, or --user to revoke all of that person's sessions. Written to the audit log (`alpine logs --audit`). Admins only (`forbidden` otherwise).",
      flags: {
        user: {
          type: "string",
          value: "login",
          description: "revoke every live session of this person: a GitHub login or a principal id",
        },
      },
      examples: ["alpine sessions revoke 3f9a0c12d4e5b6a7", "alpine sessions revoke --user mallory"],
      output: "sessions-revoke",
      handler: () => import("./sessions-run.ts").then((m) => m.sessionsRevoke),
    }),
  ],
});
