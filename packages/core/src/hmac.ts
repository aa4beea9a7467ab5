/**
 * HMAC-SHA256 through WebCrypto, the same in the CLI's Node and in workerd: notification webhooks'
 * signatures, GitHub's webhook signatures, the dashboard's sessions and CSRF tokens.
 */

function keyOf(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [usage],
  );
}

export async function hmacSha256(secret: string, text: string): Promise<Uint8Array<ArrayBuffer>> {
  const mac = await crypto.subtle.sign("HMAC", await keyOf(secret, "sign"), new TextEncoder().encode(text));
  return new Uint8Array(mac);
}

/** Whether `mac` is the HMAC of `text` under `secret`, compared in constant time by WebCrypto. */
export async function hmacSha256Verify(
  secret: string,
  text: string,
  mac: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  return crypto.subtle.verify("HMAC", await keyOf(secret, "verify"), mac, new TextEncoder().encode(text));
}

export function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
