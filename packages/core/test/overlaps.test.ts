import { describe, expect, it } from "vitest";
import {
  changesSeen,
  type ExportRecord,
  type Overlap,
  observeStatus,
  overlapsAmong,
  overlapsOf,
  reconciliation,
  repoIdentity,
  type WorkOnRepo,
  withOverlaps,
  workOf,
  workOfItem,
} from "../src/index.ts";
import { peerWork } from "../src/orchestrator/reading.ts";
import type { OrchestratorDeps } from "../src/orchestrator/types.ts";
import { listItemView } from "../src/views.ts";
import { aRecord, aStatus, aWorkspace } from "./fakes/records.ts";

const T1 = "1".repeat(40);
const T2 = "2".repeat(40);

describe("repoIdentity: one spelling per repository", () => {
  it.each([
    ["https://github.com/acme/app.git", "github.com/acme/app"],
    ["https://github.com/acme/app", "github.com/acme/app"],
    ["https://github.com/acme/app/", "github.com/acme/app"],
    ["https://user@GitHub.com/acme/app.git", "github.com/acme/app"],
    ["http://127.0.0.1:8123/acme/app.git", "127.0.0.1/acme/app"],
    ["git@github.com:acme/app.git", "github.com/acme/app"],
    ["ssh://git@github.com/acme/app.git", "github.com/acme/app"],
    ["ssh://git@github.com:22/acme/app", "github.com/acme/app"],
    ["/home/me/src/app", "/home/me/src/app"],
    ["/home/me/src/app/", "/home/me/src/app"],
    ["/home/me/src/app/.git", "/home/me/src/app"],
    ["/srv/git/app.git", "/srv/git/app"],
    ["file:///home/me/src/app", "/home/me/src/app"],
    ["file:///home/me//src/app/", "/home/me/src/app"],
  ])("%s → %s", (repo, identity) => {
    expect(repoIdentity(repo)).toBe(identity);
  });

  it("keeps different repositories apart (owner, name, host)", () => {
    const ids = new Set(
      [
        "https://github.com/acme/app",
        "https://github.com/acme/app2",
        "https://github.com/other/app",
        "https://gitlab.com/acme/app",
        "/home/me/src/app",
      ].map(repoIdentity),
    );
    expect(ids.size).toBe(5);
  });
});

const work = (name: string, files: string[], more: Partial<WorkOnRepo> = {}): WorkOnRepo => ({
  name,
  repo: "https://github.com/acme/app.git",
  files,
  destroyed: false,
  unexported: true,
  ...more,
});

describe("overlapsOf: which other sandboxes changed the same files", () => {
  const cases: {
    name: string;
    subject: WorkOnRepo;
    others: WorkOnRepo[];
    unexportedOnly?: boolean;
    want: Overlap[];
  }[] = [
    {
      name: "same repo, one shared file",
      subject: work("a", ["src/x.ts", "README.md"]),
      others: [work("b", ["src/x.ts", "src/y.ts"])],
      want: [{ name: "b", files: ["src/x.ts"] }],
    },
    {
      name: "same repo by another URL form",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { repo: "git@GitHub.com:acme/app" })],
      want: [{ name: "b", files: ["src/x.ts"] }],
    },
    {
      name: "a different repo never overlaps",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { repo: "https://github.com/acme/other" })],
      want: [],
    },
    {
      name: "disjoint files",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/y.ts"])],
      want: [],
    },
    {
      name: "no changes of its own: nothing to overlap",
      subject: work("a", []),
      others: [work("b", ["src/x.ts"])],
      want: [],
    },
    {
      name: "itself is not an overlap",
      subject: work("a", ["src/x.ts"]),
      others: [work("a", ["src/x.ts"])],
      want: [],
    },
    {
      name: "several others, sorted by name, files sorted",
      subject: work("a", ["z.ts", "m.ts", "b.ts"]),
      others: [work("c", ["z.ts", "b.ts"]), work("b", ["m.ts"])],
      want: [
        { name: "b", files: ["m.ts"] },
        { name: "c", files: ["b.ts", "z.ts"] },
      ],
    },
    {
      name: "list/status: a destroyed sandbox does not count",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { destroyed: true })],
      want: [],
    },
    {
      name: "list/status: an exported sandbox still counts",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { unexported: false })],
      want: [{ name: "b", files: ["src/x.ts"] }],
    },
    {
      name: "export: another's exported work does not count",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { unexported: false })],
      unexportedOnly: true,
      want: [],
    },
    {
      name: "export: a torn-down sandbox's unexported work counts (it lives in a checkpoint)",
      subject: work("a", ["src/x.ts"]),
      others: [work("b", ["src/x.ts"], { destroyed: true })],
      unexportedOnly: true,
      want: [{ name: "b", files: ["src/x.ts"] }],
    },
  ];
  it.each(cases)("$name", ({ subject, others, unexportedOnly, want }) => {
    expect(overlapsOf(subject, others, { unexportedOnly })).toEqual(want);
  });

  it("overlapsAmong gives each side its overlaps, and none to a destroyed sandbox", () => {
    const found = overlapsAmong([
      work("a", ["x"]),
      work("b", ["x", "y"]),
      work("c", ["y"], { destroyed: true }),
    ]);
    expect(Object.fromEntries(found)).toEqual({
      a: [{ name: "b", files: ["x"] }],
      b: [{ name: "a", files: ["x"] }],
      c: [],
    });
  });
});

describe("workOf: a record's work", () => {
  const exported = (tree: string, pushed = true): ExportRecord => ({
    branch: "alpine/box",
    commit: "c".repeat(40),
    tree_hash: tree,
    remote: null,
    pushed_at: pushed ? "2026-01-01T00:00:00.000Z" : null,
    pr_url: null,
    patch_file: null,
    exported_at: "2026-01-01T00:00:00.000Z",
  });
  const changes = { files: ["x"], tree_hash: T1, seen_at: "2026-01-01T00:00:00.000Z" };
  it.each([
    { name: "no changes kept (an old record)", record: aRecord(), files: [], unexported: false },
    { name: "changes, never exported", record: aRecord({ changes }), files: ["x"], unexported: true },
    {
      name: "pushed with the same tree",
      record: aRecord({ changes, export: exported(T1) }),
      files: ["x"],
      unexported: false,
    },
    {
      name: "pushed, then changed again",
      record: aRecord({ changes, export: exported(T2) }),
      files: ["x"],
      unexported: true,
    },
    {
      name: "only a patch was made",
      record: aRecord({ changes, export: exported(T1, false) }),
      files: ["x"],
      unexported: true,
    },
  ])("$name", ({ record, files, unexported }) => {
    expect(workOf(record)).toMatchObject({ files, unexported, destroyed: false });
  });
});

describe("the record keeps the changed files a probe saw", () => {
  const status = aStatus({
    workspace: aWorkspace({
      changed_files: [
        { path: "src/y.ts", status: "added" },
        { path: "src/x.ts", status: "modified" },
      ],
      tree_hash: T1,
    }),
  });
  it("a new set of changes is observed and written, sorted", () => {
    const record = aRecord();
    expect(observeStatus(record, status).changesChanged).toBe(true);
    expect(reconciliation(record, status, false, "2026-02-02T00:00:00.000Z").patch.changes).toEqual({
      files: ["src/x.ts", "src/y.ts"],
      tree_hash: T1,
      seen_at: "2026-02-02T00:00:00.000Z",
    });
  });
  it("the same changes are not rewritten (seen_at says since when)", () => {
    const record = aRecord({ changes: changesSeen(status, "2026-01-01T00:00:00.000Z")! });
    expect(observeStatus(record, status).changesChanged).toBe(false);
    expect(reconciliation(record, status, false, "2026-02-02T00:00:00.000Z").patch.changes).toBeUndefined();
  });
  it("no workspace in the status keeps what the record had", () => {
    const record = aRecord();
    expect(observeStatus(record, aStatus({ workspace: null })).changesChanged).toBe(false);
  });
});

describe("withOverlaps: list items from records", () => {
  it("fills overlaps from the items' changed files", () => {
    const seen = (files: string[]) => ({ files, tree_hash: T1, seen_at: "2026-01-01T00:00:00.000Z" });
    const items = withOverlaps([
      listItemView(aRecord({ name: "a", changes: seen(["x", "y"]) })),
      listItemView(aRecord({ name: "b", repo: "https://github.test/acme/app", changes: seen(["y"]) })),
      listItemView(aRecord({ name: "c", changes: seen(["z"]) })),
    ]);
    expect(items.map((i) => [i.name, i.overlaps])).toEqual([
      ["a", [{ name: "b", files: ["y"] }]],
      ["b", [{ name: "a", files: ["y"] }]],
      ["c", []],
    ]);
    expect(items[0]!.changed_files).toEqual(["x", "y"]);
    expect(items[0]!.changes_seen_at).toBe("2026-01-01T00:00:00.000Z");
  });
});

describe("workOfItem: a list item's work (the control plane's registry answers overlaps from items)", () => {
  const seen = { files: ["x"], tree_hash: T1, seen_at: "2026-01-01T00:00:00.000Z" };
  const pushed = (tree: string): ExportRecord => ({
    branch: "alpine/box",
    commit: "c".repeat(40),
    tree_hash: tree,
    remote: null,
    pushed_at: "2026-01-01T00:00:00.000Z",
    pr_url: null,
    patch_file: null,
    exported_at: "2026-01-01T00:00:00.000Z",
  });
  it.each([
    { name: "changes never exported", record: aRecord({ changes: seen }) },
    { name: "changes pushed as they are", record: aRecord({ changes: seen, export: pushed(T1) }) },
    { name: "changed after the push", record: aRecord({ changes: seen, export: pushed(T2) }) },
    { name: "no changes seen", record: aRecord() },
    { name: "torn down", record: aRecord({ changes: seen, state: "destroyed" }) },
  ])("is the record's own work when it carries it: $name", ({ record }) => {
    expect(workOfItem(listItemView(record))).toEqual(workOf(record));
  });

  it("an item an older control plane stored (no `unexported`) counts as exported", () => {
    const { unexported: _dropped, ...old } = listItemView(aRecord({ changes: seen }));
    expect(workOfItem(old).unexported).toBe(false);
  });
});

describe("peerWork: whose work overlap warnings compare with", () => {
  const store = (records: ReturnType<typeof aRecord>[]) => ({ list: async () => records });
  it("the store's records when no peers are given (local and docker: the store holds them all)", async () => {
    const r = aRecord({ name: "mine" });
    const deps = { store: store([r]) } as unknown as OrchestratorDeps;
    expect(await peerWork(deps)).toEqual([workOf(r)]);
  });

  it("the given peers over the store (a sandbox object's store holds only its own record)", async () => {
    const other: WorkOnRepo = { name: "theirs", repo: "r", files: ["a"], destroyed: false, unexported: true };
    const deps = {
      store: store([aRecord({ name: "mine" })]),
      peers: async () => [other],
    } as unknown as OrchestratorDeps;
    expect(await peerWork(deps)).toEqual([other]);
  });
});
