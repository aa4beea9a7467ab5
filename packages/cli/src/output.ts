import { type AlpineError, toAlpineError } from "@alpine/core/errors";

export interface OutputOptions {
  json: boolean;
  verbose: boolean;
}

/** Colour only on a TTY and never with NO_COLOR (https://no-color.org). */
export function colourEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

const paint = (code: number) => (text: string) =>
  colourEnabled() ? `\u001b[${code}m${text}\u001b[0m` : text;
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const yellow = paint(33);

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Renders any error in the contract's shape (docs/json-contract.md, docs/errors.md) and returns its exit code. */
export function reportError(err: unknown, opts: OutputOptions): number {
  const error: AlpineError = toAlpineError(err);
  if (opts.json) {
    printJson(error.toJSON());
  } else {
    const stderrColour = colourEnabled(process.stderr);
    const prefix = stderrColour ? "\u001b[31merror:\u001b[0m" : "error:";
    process.stderr.write(`${prefix} ${error.message}\n`);
    process.stderr.write(`  hint: ${error.hint} (${error.reason})\n`);
    if (opts.verbose && Object.keys(error.details).length > 0) {
      process.stderr.write(`  details: ${JSON.stringify(error.details)}\n`);
    }
    if (
      opts.verbose &&
      error.reason === "internal_error" &&
      error.cause instanceof Error &&
      error.cause.stack
    ) {
      process.stderr.write(`${error.cause.stack}\n`);
    }
  }
  return error.exitCode;
}

/** Aligned columns; the header is dimmed on a TTY. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [dim(line(headers)), ...rows.map(line)].join("\n");
}

/** "3m ago", "just now", "in 5m"; "-" for null. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const diff = Math.round((now - Date.parse(iso)) / 1000);
  const abs = Math.abs(diff);
  if (abs < 10) return "just now";
  const units: [number, string][] = [
    [86400, "d"],
    [3600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  const [size, unit] = units.find(([s]) => abs >= s) ?? [1, "s"];
  const n = Math.floor(abs / size);
  return diff >= 0 ? `${n}${unit} ago` : `in ${n}${unit}`;
}

/** Step-by-step progress on stderr, for people: only on a TTY, or with -v. */
export function stderrProgress(opts: OutputOptions) {
  const show = Boolean(process.stderr.isTTY) || opts.verbose;
  const started = Date.now();
  return {
    step(name: string) {
      if (show) process.stderr.write(`${dim(`[${((Date.now() - started) / 1000).toFixed(1)}s]`)} ${name}\n`);
    },
    warn(message: string) {
      process.stderr.write(`${yellow("warning:")} ${message}\n`);
    },
  };
}
