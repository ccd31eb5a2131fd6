/**
 * What each task costs a user to fetch. `deno.lock` belongs to the user's tasks (train, eval,
 * predict, tour, synth), `locks/web.lock` to the reader page's (bundle, serve), and
 * `locks/dev.lock` to the tests and the bench. Deno installs every package of a task's lock
 * file on first run, so the CLI lock must hold nothing only the bench, the tests or the page
 * use, and the user's tasks must not name another lock file.
 */
import assert from "node:assert/strict";
import { PROJECT_ROOT } from "./helpers.ts";

const read = (f: string) => JSON.parse(Deno.readTextFileSync(`${PROJECT_ROOT}${f}`));
/** Package names (no versions) of a lock file's npm section. */
const packages = (f: string) =>
  new Set(Object.keys(read(f).npm ?? {}).map((k) => k.replace(/^(@?[^@]+)@.*$/, "$1")));

const USER_TASKS = ["train", "keypoints", "eval", "predict", "tour", "synth"];
const DEV_ONLY = ["@tensorflow/tfjs", "@jax-js/jax", "playwright-core", "core-js"];
const WEB_ONLY = ["esbuild", "fflate"];

Deno.test("a user's train, eval and predict fetch neither bench, test nor page packages", () => {
  const cli = packages("deno.lock");
  for (const p of ["imagescript", "csv-parse", "chart.js"]) assert.ok(cli.has(p), p);
  for (const p of [...DEV_ONLY, ...WEB_ONLY]) assert.ok(!cli.has(p), `deno.lock holds ${p}`);
  const web = packages("locks/web.lock");
  for (const p of WEB_ONLY) assert.ok(web.has(p), p);
  for (const p of DEV_ONLY) assert.ok(!web.has(p), `locks/web.lock holds ${p}`);
  const tasks = read("deno.json").tasks;
  for (const t of USER_TASKS) assert.doesNotMatch(tasks[t].command, /--lock/, t);
  for (const t of ["bundle", "serve"]) assert.match(tasks[t].command, /--lock=locks\/web\.lock/);
  for (const t of ["test", "check", "bench"]) {
    assert.match(tasks[t].command, /--lock=locks\/dev\.lock/, t);
  }
});

Deno.test("nothing a user reads points at the developers' ../shared folder", async () => {
  const files = ["README.md", "web/index.html", "web/app.ts"];
  for (const dir of ["tasks", "src"]) {
    for await (const e of Deno.readDir(`${PROJECT_ROOT}${dir}`)) {
      if (e.isFile && e.name.endsWith(".ts")) files.push(`${dir}/${e.name}`);
    }
  }
  for (const f of files) {
    const text = await Deno.readTextFile(`${PROJECT_ROOT}${f}`);
    // The README's Results section may say where its own measurements came from.
    const userPart = f === "README.md" ? text.split("\n## Results")[0] : text;
    assert.doesNotMatch(userPart, /\.\.\/shared/, f);
  }
});
