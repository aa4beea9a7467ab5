import type { Clock, HostIdentity, Ids, Logger } from "../../src/index.ts";

/** A clock that moves only when told: `sleep` and `advance` move it and fire due `every` timers. */
export class FakeClock implements Clock {
  private timers: { every: number; next: number; fn: () => void; stopped: boolean }[] = [];
  slept: number[] = [];

  constructor(public ms = Date.parse("2026-01-01T00:00:00.000Z")) {}

  now(): number {
    return this.ms;
  }

  every(ms: number, fn: () => void): () => void {
    const timer = { every: ms, next: this.ms + ms, fn, stopped: false };
    this.timers.push(timer);
    return () => {
      timer.stopped = true;
    };
  }

  async sleep(ms: number): Promise<void> {
    this.slept.push(ms);
    this.advance(ms);
  }

  advance(ms: number): void {
    const until = this.ms + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.stopped && t.next <= until).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.ms = due.next;
      due.next += due.every;
      due.fn();
    }
    this.ms = until;
  }

  /** Timers still running (a released lease must stop its renewal). */
  get activeTimers(): number {
    return this.timers.filter((t) => !t.stopped).length;
  }

  iso(): string {
    return new Date(this.ms).toISOString();
  }
}

export class SequentialIds implements Ids {
  private n = 0;
  sandboxId(): string {
    return `sbx_${++this.n}`;
  }
  operationId(): string {
    return `op_${++this.n}`;
  }
}

/** This process is pid 100 on host "here"; `alive` lists the other pids that still run here. */
export class FakeHost implements HostIdentity {
  host = "here";
  pid = 100;
  alive = new Set<number>();
  isProcessAlive(pid: number): boolean {
    return pid === this.pid || this.alive.has(pid);
  }
}

export class RecordingLogger implements Logger {
  readonly lines: { level: "debug" | "warn"; message: string; details?: Record<string, unknown> }[] = [];
  debug(message: string, details?: Record<string, unknown>): void {
    this.lines.push({ level: "debug", message, details });
  }
  warn(message: string, details?: Record<string, unknown>): void {
    this.lines.push({ level: "warn", message, details });
  }
  messages(level?: "debug" | "warn"): string[] {
    return this.lines.filter((l) => !level || l.level === level).map((l) => l.message);
  }
}
