/**
 * Secrets handling inside the control plane: constant-time comparison of the
 * bearer token, keys derived from the control-plane token (HKDF), AES-GCM for
 * what is stored encrypted, HMAC-derived sandbox tokens (never stored).
 */

const encoder = new TextEncoder();

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/**
 * Constant-time equality of two secrets of any length: both are hashed first,
 * so the comparison runs over 32 bytes whatever was sent.
 */
export async function safeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  const x = new Uint8Array(da);
  const y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

async function hkdf(secret: string, info: string, usage: "aes" | "hmac"): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
  const params = {
    name: "HKDF",
    hash: "SHA-256",
    salt: encoder.encode("alpine control plane"),
    info: encoder.encode(info),
  };
  return usage === "aes"
    ? crypto.subtle.deriveKey(params, base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"])
    : crypto.subtle.deriveKey(params, base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
}

/** Encrypts a JSON value for storage (AES-256-GCM, random 96-bit IV, `purpose` bound as associated data). */
export async function sealJson(secret: string, purpose: string, value: unknown): Promise<string> {
  const key = await hkdf(secret, `seal:${purpose}`, "aes");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = encoder.encode(JSON.stringify(value));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(purpose) },
    key,
    data,
  );
  return `v1.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(sealed))}`;
}

export async function openJson<T>(secret: string, purpose: string, sealed: string): Promise<T> {
  const [version, iv, body] = sealed.split(".");
  if (version !== "v1" || !iv || !body) throw new Error("sealed value has an unknown format");
  const key = await hkdf(secret, `seal:${purpose}`, "aes");
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: fromBase64Url(iv), additionalData: encoder.encode(purpose) },
    key,
    fromBase64Url(body),
  );
  return JSON.parse(new TextDecoder().decode(plain)) as T;
}

/**
 * The bearer token of a sandbox's sandboxd, derived from the control-plane
 * secret, the sandbox id and a per-runtime nonce: it is recomputed when
 * needed and never stored (not in DO storage, R2 or a runtime handle).
 */
export async function sandboxToken(secret: string, sandboxId: string, nonce: string): Promise<string> {
  const key = await hkdf(secret, "sandbox-token", "hmac");
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${sandboxId}\n${nonce}`));
  return toBase64Url(new Uint8Array(mac));
}

export function randomId(bytes = 16): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}
