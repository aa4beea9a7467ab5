import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AlpineError,
  canTransition,
  type SandboxState,
  STATES,
  TRANSITIONS,
  transition,
} from "../src/index.ts";

const ctx = { at: "2026-01-01T00:00:00.000Z", operation_id: "op_1", reason: "test" };

// The table of docs/architecture.md ("Lifecycle"), written out again independently so a change to the code's table is caught.
const EXPECTED: Record<SandboxState, SandboxState[]> = {
  new: ["provisioning", "error"],
  provisioning: ["running", "completed", "error"],
  running: ["saving", "completed", "tearing_down", "error", "suspended"],
  saving: ["running", "completed", "tearing_down", "error", "suspended"],
  completed: ["running", "saving", "tearing_down", "error", "suspended"],
  tearing_down: ["destroyed", "error"],
  destroyed: ["provisioning"],
  error: ["provisioning", "saving", "tearing_down"],
  suspended: ["provisioning", "tearing_down", "error"],
};

describe("lifecycle table", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const legal = EXPECTED[from].includes(to);
      it(`${from} → ${to} is ${legal ? "allowed" : "refused"}`, () => {
        expect(canTransition(from, to)).toBe(legal);
        if (legal) {
          const event = transition({ id: "sbx", state: from }, to, ctx);
          expect(event).toEqual({
            sandbox_id: "sbx",
            at: ctx.at,
            from,
            to,
            operation_id: "op_1",
            reason: "test",
          });
        } else {
          try {
            transition({ id: "sbx", state: from }, to, ctx);
            expect.unreachable();
          } catch (err) {
            expect(err).toBeInstanceOf(AlpineError);
            expect((err as AlpineError).reason).toBe("state_transition_invalid");
            expect((err as AlpineError).details.allowed).toEqual(EXPECTED[from]);
          }
        }
      });
    }
  }

  it("the code's table equals the documented one", () => {
    expect(Object.fromEntries(STATES.map((s) => [s, [...TRANSITIONS[s]].sort()]))).toEqual(
      Object.fromEntries(STATES.map((s) => [s, [...EXPECTED[s]].sort()])),
    );
  });

  it("no sequence of requested changes reaches a state the table forbids, and every change yields an event", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...STATES), { maxLength: 60 }), (requests) => {
        let state: SandboxState = "new";
        const events: { from: SandboxState; to: SandboxState }[] = [];
        for (const to of requests) {
          const before = state;
          try {
            const event = transition({ id: "sbx", state }, to, ctx);
            events.push(event);
            state = event.to;
          } catch (err) {
            expect((err as AlpineError).reason).toBe("state_transition_invalid");
            expect(state).toBe(before);
          }
        }
        // Replaying the events reproduces the state, and each step is legal.
        let replay: SandboxState = "new";
        for (const e of events) {
          expect(e.from).toBe(replay);
          expect(EXPECTED[e.from]).toContain(e.to);
          replay = e.to;
        }
        expect(replay).toBe(state);
      }),
      { numRuns: 500 },
    );
  });
});
