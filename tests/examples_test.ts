/**
 * Every task answers `--help` with its usage and examples, and every example runs as written
 * (`deno task ...`, the permissions of `deno.json`) in a scratch copy of the project, in the
 * order a new user would go: synth, train, eval, predict, tour, bundle, serve. The bench's
 * example is only checked to be shown: it runs for over 25 minutes on a CPU adapter.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROJECT_ROOT, runDeno } from "./helpers.ts";

/** What a copy of the project needs to run its tasks (git-ignored folders are rebuilt). */
const PROJECT_FILES = [
  "deno.json",
  "deno.lock",
  "locks",
  "kernels",
  "src",
  "tasks",
  "web",
  "weights",
];
/** Tasks whose examples this test runs, in this order (later ones use earlier ones' output). */
const ORDER = ["synth", "keypoints", "train", "eval", "predict", "tour", "bundle", "serve"];
/** Tasks that `deno task` runs without `--help` of their own (deno test, deno check). */
const DENO_SUBCOMMANDS = new Set(["test", "check"]);

const config = JSON.parse(await Deno.readTextFile(`${PROJECT_ROOT}deno.json`));
const tasks = Object.keys(config.tasks);

async function copyProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bone-age-examples-" });
  for (const f of PROJECT_FILES) {
    const code = (await new Deno.Command("cp", { args: ["-r", join(PROJECT_ROOT, f), dir] })
      .output()).code;
    assert.equal(code, 0, `copying ${f}`);
  }
  await Deno.mkdir(join(dir, "data"));
  return dir;
}

/** `deno task ...` in `cwd`, with stdout and stderr. */
const denoTask = (cwd: string, args: string[]) => runDeno(["task", ...args], cwd);

/** The example commands of a help text: the indented `deno task` lines after `Examples:`. */
function examplesOf(help: string): string[] {
  const at = help.indexOf("\nExamples:\n");
  if (at < 0) return [];
  return help.slice(at).split("\n").map((l) => l.trim()).filter((l) => l.startsWith("deno task "));
}

Deno.test({
  name: "every task has a description in deno.json, answers --help, and its examples run",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    for (const name of tasks) {
      assert.ok(config.tasks[name].description?.length > 10, `${name}: a description`);
    }
    assert.deepEqual(
      tasks.filter((n) => !DENO_SUBCOMMANDS.has(n)).sort(),
      [...ORDER, "bench"].sort(),
      "every task's examples run here, but the bench's",
    );
    const dir = await copyProject();
    const examples = new Map<string, string[]>();
    await t.step("--help", async () => {
      for (const name of [...ORDER, "bench"]) {
        const r = await denoTask(dir, [name, "--help"]);
        assert.equal(r.code, 0, `${name} --help: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage: deno task ${name}\\b`, "m"), name);
        const list = examplesOf(r.stdout);
        assert.ok(list.length > 0, `${name} --help shows an example`);
        for (const e of list) assert.match(e, new RegExp(`^deno task ${name}( |$)`));
        examples.set(name, list);
      }
    });
    for (const name of ORDER) {
      for (const example of examples.get(name) ?? []) {
        await t.step(example, async () => {
          assert.doesNotMatch(example, /["'\\]/, "examples split on spaces");
          const args = example.split(/\s+/).slice(2);
          if (name === "serve") return await checkServe(dir, args);
          const r = await denoTask(dir, args);
          assert.equal(r.code, 0, `${example}\n${r.stdout}\n${r.stderr}`);
        });
      }
    }
    await Deno.remove(dir, { recursive: true });
  },
});

/** Starts the server as the example says, loads the page once, and stops it. */
async function checkServe(dir: string, args: string[]): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", ...args],
    cwd: dir,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  try {
    while (!/Bone age reader: (\S+)/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve ended before listening:\n${seen}`);
      seen += value;
    }
    const url = /Bone age reader: (\S+)/.exec(seen)![1];
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const meta = await fetch(new URL("checkpoint/best.json", url));
    assert.equal(meta.status, 200, "the example's checkpoint is served");
    await meta.body?.cancel();
  } finally {
    // `deno task` passes the signal on to the server it started.
    child.kill("SIGTERM");
    await reader.cancel().catch(() => {});
    await child.status;
  }
}
