import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readSync } from "node:fs";
import { dirname } from "node:path";

export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * JSON lines appended to the sandbox's log file, and to stderr too with
 * `stderr` (in a container, whose platform keeps what it prints after its disk
 * is gone). Every registered secret is replaced by "***" before a line is
 * written, as a safety net: code should never log secrets in the first place.
 */
export class Logger {
  private readonly secrets = new Set<string>();

  constructor(
    private readonly file: string,
    private readonly base: Record<string, unknown> = {},
    private readonly stderr = false,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, "", { mode: 0o600 });
  }

  /** Never write this value (nor its JSON-escaped form) to the log. */
  addSecret(value: string | undefined): void {
    if (value && value.length >= 6) {
      this.secrets.add(value);
      const escaped = JSON.stringify(value).slice(1, -1);
      if (escaped !== value) this.secrets.add(escaped);
    }
  }

  /** `text` with every registered secret replaced by "***" (for output sent elsewhere than the log). */
  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join("***");
    return out;
  }

  log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    let line = JSON.stringify({ ts: new Date().toISOString(), level, msg, ...this.base, ...fields });
    for (const s of this.secrets) if (line.includes(s)) line = line.split(s).join("***");
    try {
      appendFileSync(this.file, line + "\n");
    } catch {
      // A full disk must not take sandboxd down; nothing better to do with the line.
    }
    // stderr's errors are ignored (main.ts): a closed stderr must not stop the file log.
    if (this.stderr) process.stderr.write(line + "\n");
  }

  /** The last `n` lines of the log file, oldest first (reads at most its last 4 MiB). */
  tail(n: number): string[] {
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      // Removed underneath us: nothing to show.
      return [];
    }
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, 4 * 1024 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      const lines = buf.toString("utf8").split("\n").filter(Boolean);
      // A window that starts mid-file starts mid-line: drop the partial first one.
      if (len < size) lines.shift();
      return lines.slice(-n);
    } finally {
      closeSync(fd);
    }
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log("error", msg, fields);
  }
}

/** Splits a byte stream into lines and hands each complete line to fn (the rest at end). */
export function lineSplitter(fn: (line: string) => void): {
  push(chunk: Buffer | string): void;
  end(): void;
} {
  let buf = "";
  return {
    push(chunk) {
      buf += chunk.toString();
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        fn(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
      // Bound memory for a process that never ends its line.
      if (buf.length > 64 * 1024) {
        fn(buf);
        buf = "";
      }
    },
    end() {
      if (buf) fn(buf);
      buf = "";
    },
  };
}
