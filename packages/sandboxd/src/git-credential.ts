/**
 * git credential helper run by git for sandboxd's own git commands:
 *   git -c credential.helper= -c 'credential.helper=!node …/git-credential.js' …
 * with ALPINE_CREDENTIAL_URL pointing at sandboxd's loopback route for this
 * command. Answers `get` with what sandboxd returns; ignores store/erase (no
 * credential is ever stored).
 */

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<void> {
  const action = process.argv[2];
  const input = await readStdin();
  const url = process.env.ALPINE_CREDENTIAL_URL;
  if (action !== "get" || !url) return;
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: input,
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) return;
  const { username, password } = (await res.json()) as { username?: unknown; password?: unknown };
  if (typeof username !== "string" || typeof password !== "string") return;
  if (/[\n\0]/.test(username + password)) return;
  process.stdout.write(`username=${username}\npassword=${password}\n`);
}

main().catch(() => {
  // No answer: git goes on without credentials (and fails with its own message).
});
