// A separate process that takes a sandbox's lease through the real store and
// orchestrator code, for cross-process race and takeover tests.
import { type AlpineError, acquireLease } from "@alpine/core";
import { nodeClock, nodeIds, thisHost } from "../../packages/cli/src/context.ts";
import { SqliteStateStore } from "../../packages/cli/src/store/sqlite-store.ts";

const [dbPath, name, holdMs, startAt] = process.argv.slice(2) as [string, string, string, string];
const store = new SqliteStateStore(dbPath);
const wait = Number(startAt) - Date.now();
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
try {
  const held = await acquireLease(
    { store, clock: nodeClock, host: thisHost, ids: nodeIds },
    { id: `sbx-${name}`, name },
    "launch",
    nodeIds.operationId(),
  );
  process.stdout.write(`${JSON.stringify({ acquired: true, lease: held.lease })}\n`);
  await new Promise((r) => setTimeout(r, Number(holdMs)));
  await held.release();
  process.stdout.write(`${JSON.stringify({ released: true })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ acquired: false, reason: (err as AlpineError).reason })}\n`);
}
store.close();
